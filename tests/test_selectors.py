"""Each selector's formula, quoted and checked on hand-computed cases."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest
from scipy.stats import beta

from dgm.config import ConfigError, load_config
from dgm.policy import EvolutionPolicy, Member, Population, Unit
from dgm.selectors import Candidates, make_selector
from dgm.selectors.cmp import CMP
from dgm.selectors.novelty import Novelty
from dgm.selectors.parents import Best, RandomSelector, ScoreChildProp, ScoreProp

TASKS = ["a", "b", "c", "d"]


def tree(results: dict[str, dict[str, bool | None]], parents: dict[str, str | None]) -> Population:
    """A population grown in the order given, with each node's results."""
    population = Population()
    for node, parent in parents.items():
        population.add(Member(node, parent), results.get(node, {}))
    return population


def counts(population: Population, node: str) -> tuple[int, ...]:
    """A member's n_s, n_f, N_s, N_f."""
    c, row = population.columns(), population.index[node]
    names = ("successes", "failures", "clade_successes", "clade_failures")
    return tuple(int(c[name][row]) for name in names)


def draws(selector, candidates: Candidates, n: int = 20000) -> dict[str, float]:
    rng = random.Random(1)
    counts = Counter(selector.pick(candidates, rng) for _ in range(n))
    return {name: counts[name] / n for name in candidates.names}


def test_score_child_prop_is_dgms_rule():
    # weight = sigmoid(10 (score - 0.5)) / (1 + children admitted to the archive)
    candidates = Candidates.of(("good", 0.9, 0), ("bad", 0.1, 0), ("busy", 0.8, 2))
    weights = ScoreChildProp().weights(candidates)
    expected = [1 / (1 + math.exp(-4)), 1 / (1 + math.exp(4)), 1 / (1 + math.exp(-3)) / 3]
    assert weights == pytest.approx(expected)
    total = sum(expected)
    for (name, share), weight in zip(
        draws(ScoreChildProp(), candidates).items(), expected, strict=True
    ):
        assert share == pytest.approx(weight / total, abs=0.02), name


def test_score_prop_ignores_children_random_is_uniform_and_best_is_the_highest_score():
    candidates = Candidates.of(("a", 0.5, 0), ("b", 0.8, 5), ("c", 0.3, 0))
    assert ScoreProp().weights(candidates) == pytest.approx(
        [0.5, 1 / (1 + math.exp(-3)), 1 / (1 + math.exp(2))]
    )
    assert all(
        share == pytest.approx(1 / 3, abs=0.02)
        for share in draws(RandomSelector(), candidates).values()
    )
    assert draws(Best(), candidates) == {"a": 0.0, "b": 1.0, "c": 0.0}


def test_clade_counts_sum_a_node_and_its_descendants_without_touching_its_own():
    #        r (1 success, 1 failure)
    #       / \
    #      x   y (2 failures)
    #      |
    #      z (2 successes, 1 harness error)
    population = tree(
        {"r": {"a": True, "b": False}, "y": {"a": False, "b": False},
         "z": {"a": True, "b": True, "c": None}},
        {"r": None, "x": "r", "y": "r", "z": "x"},
    )  # fmt: skip
    every = {n: counts(population, n) for n in population.ids}
    assert every == {"r": (1, 1, 3, 3), "x": (0, 0, 2, 0), "y": (0, 2, 0, 2), "z": (2, 0, 2, 0)}
    population.record("x", "a", True)  # a later result moves its ancestors' clade counts only
    population.record("z", "c", False)  # a harness error tried again
    assert counts(population, "r") == (1, 1, 4, 4)
    x_s, _, x_clade_s, x_clade_f = counts(population, "x")
    assert (x_s, x_clade_s, x_clade_f) == (1, 3, 1)
    assert counts(population, "z")[:2] == (2, 1) and population.evaluations == 9


def test_cmp_evaluates_the_root_then_expands_it_five_times():
    policy = EvolutionPolicy(tree({}, {"r": None}), [TASKS], [0.0], CMP(), rng=random.Random(0))
    first = policy.next_unit(set())
    assert first.kind == "evaluate" and first.node == "r"
    policy.evaluated("r", first.task, False)
    in_flight: list[Unit] = []
    for i in range(5):
        unit = policy.next_unit(in_flight)
        assert unit == Unit("expand", "r"), i
        policy.expanded("r", f"c{i}", usable=True) if i < 3 else in_flight.append(unit)
    # 5 started (3 children, 2 in flight): 1 evaluation ^ 0.6 < 6 nodes + 2 expanding: evaluate
    assert policy.next_unit(in_flight).kind == "evaluate"


def test_cmp_expands_when_n_to_the_alpha_reaches_the_number_of_nodes():
    # 3 nodes; 6 evaluations: 6^0.6 = 2.93 < 3 -> evaluate; 7: 7^0.6 = 3.21 >= 3 -> expand
    results = {"r": dict.fromkeys("abcd", True), "x": {"a": True, "b": False}}
    population = tree(results, {"r": None, "x": "r", "y": "r"})
    policy = EvolutionPolicy(
        population, [TASKS], [0.0], CMP(initial_expansions=2), rng=random.Random(0)
    )
    assert policy.next_unit(set()).kind == "evaluate"
    policy.evaluated("x", "c", False)
    assert policy.next_unit(set()).kind == "expand"
    # an expansion in flight counts as a node: 7^0.6 < 4 -> evaluate
    assert policy.next_unit({Unit("expand", "r")}).kind == "evaluate"


def test_cmp_thompson_samples_clades_for_expansion_and_own_results_for_evaluation():
    # r's own record is poor (0/4) but its clade is rich through x (8/8); y is 2/2 alone
    results = {
        "r": dict.fromkeys("abcd", False),
        "x": dict.fromkeys("abcd", True) | {"e": True, "f": True, "g": True, "h": True},
        "y": {"a": True, "b": True},
    }
    tasks = list("abcdefgh")
    population = tree(results, {"r": None, "x": "r", "y": "r"})
    assert counts(population, "r")[2:] == (10, 4)
    cmp = CMP(initial_expansions=0)
    policy = EvolutionPolicy(population, [tasks], [0.0], cmp, rng=random.Random(3))
    n = 4000
    expanded = Counter(cmp._expansion(policy, []).node for _ in range(n))
    # P(winner) for Beta(1+N_s, 1+N_f): r ~ Beta(11, 5), x ~ Beta(9, 1), y ~ Beta(3, 1)
    rng = np.random.default_rng(0)
    sample = {
        k: rng.beta(a, b, 200000) for k, (a, b) in {"r": (11, 5), "x": (9, 1), "y": (3, 1)}.items()
    }
    wins = Counter(max(sample, key=lambda k: sample[k][i]) for i in range(200000))
    for node in "rxy":
        assert expanded[node] / n == pytest.approx(wins[node] / 200000, abs=0.03)
    # evaluation: only r and y have untried tasks; Beta(1 + 0, 1 + 4) against Beta(3, 1)
    evaluated = Counter(cmp._evaluation(policy, []).node for _ in range(n))
    assert set(evaluated) <= {"r", "y"}
    exact_r = beta(1, 5).expect(lambda t: beta(3, 1).cdf(t))  # P(draw_r > draw_y)
    assert evaluated["r"] / n == pytest.approx(exact_r, abs=0.02)


def test_tau_is_the_budget_over_what_is_left_of_it():
    population = tree({"r": {"a": True, "b": False}}, {"r": None})
    policy = EvolutionPolicy(
        population, [TASKS], [0.0], CMP(), rng=random.Random(0), evaluation_budget=10
    )
    assert CMP().tau(policy, set()) == pytest.approx(10 / 8)
    assert CMP().tau(policy, {Unit("evaluate", "r", "c")}) == pytest.approx(10 / 7)
    assert CMP(tau=2.0).tau(policy, set()) == 2.0
    no_budget = EvolutionPolicy(population, [TASKS], [0.0], CMP(), rng=random.Random(0))
    assert CMP().tau(no_budget, set()) == 1.0


def test_cmps_answer_is_the_highest_epsilon_percentile():
    # 1% percentile of Beta(1 + n_s, 1 + n_f): 9/10 beats 1/1, whose mean (2/3) is lower but
    # whose few results leave it uncertain; 90/100 beats 9/10
    population = tree(
        {"few": {"a": True}, "some": dict.fromkeys("abcdefghi", True) | {"j": False}},
        {"few": None, "some": "few"},
    )
    assert beta.ppf(0.01, 10, 2) > beta.ppf(0.01, 2, 1)
    assert CMP().answer(population) == "some"
    for i in range(100):
        population.record("few", f"t{i}", i >= 10)  # now 91/101
    assert beta.ppf(0.01, 92, 11) > beta.ppf(0.01, 10, 2)
    assert CMP().answer(population) == "few"
    assert CMP().answer(tree({}, {"r": None})) is None


def test_selectors_are_named_in_the_config_with_their_constants(tmp_path):
    assert isinstance(make_selector("cmp", {"alpha": 0.5}), CMP)
    with pytest.raises(ValueError, match="unknown selector 'nope'"):
        make_selector("nope", {})
    config = load_config(None, ["selector.name=cmp", "selector.params={alpha: 0.7, epsilon: 0.05}"])
    assert config.selector.params == {"alpha": 0.7, "epsilon": 0.05}
    with pytest.raises(ConfigError, match=r"selector: .*unexpected keyword argument 'alfa'"):
        load_config(None, ["selector.name=cmp", "selector.params={alfa: 0.7}"])
    with pytest.raises(ConfigError, match=r"use scheduler\.mode async"):
        load_config(None, ["selector.name=cmp", "scheduler.mode=generational"])


def archive_of(results: dict[str, dict[str, bool | None]]) -> EvolutionPolicy:
    """A policy over tasks a, b whose members are all admitted, in the order given."""
    population = tree(results, dict.fromkeys(results))
    for node in results:
        population.admit(node)
    return EvolutionPolicy(population, [["a", "b"]], [0.0], Novelty(), rng=random.Random(0))


def test_novelty_is_the_mean_distance_to_the_k_nearest_in_behaviour_space():
    # A = (1, 1), B = (1, 0), C = (0, 0): |AB| = |BC| = 1, |AC| = sqrt 2
    policy = archive_of(
        {"A": {"a": True, "b": True}, "B": {"a": True, "b": False}, "C": {"a": False, "b": False}}
    )
    candidates = policy.candidates([])
    far = (1 + math.sqrt(2)) / 2
    assert Novelty(k=2).novelty(policy, candidates) == pytest.approx([far, 1.0, far])
    assert Novelty(k=1).novelty(policy, candidates) == pytest.approx([1.0, 1.0, 1.0])
    # weight = (1 - w) sigmoid(10 (score - 0.5)) + w novelty / max novelty
    quality = [1 / (1 + math.exp(-5)), 0.5, 1 / (1 + math.exp(5))]
    novelty = [1.0, 1 / far, 1.0]
    expected = [0.7 * q + 0.3 * n for q, n in zip(quality, novelty, strict=True)]
    assert Novelty(k=2, weight=0.3).weights(candidates) == pytest.approx(expected)


def test_novelty_kept_up_to_date_as_the_archive_grows_equals_a_fresh_count():
    rng = random.Random(5)
    tasks = [f"t{i}" for i in range(12)]
    population = Population()
    kept = Novelty(k=3)
    policy = EvolutionPolicy(population, [tasks], [0.0], kept, rng=random.Random(0))
    for i in range(60):
        # some tasks untried (0.5 in behaviour space)
        results = {t: rng.random() < 0.5 for t in tasks if rng.random() < 0.8}
        population.add(Member(f"n{i}", None), results)
        population.admit(f"n{i}")
        if i % 7 == 0 or i == 59:  # decisions now and then: the index follows the archive
            kept.novelty(policy, policy.candidates([]))
    candidates = policy.candidates([])
    fresh = Novelty(k=3).novelty(policy, candidates)
    assert kept.novelty(policy, candidates) == pytest.approx(fresh)
    vectors = np.array(
        [[{True: 1.0, False: 0.0}.get(population.members[n].results.get(t), 0.5) for t in tasks]
         for n in population.ids]
    )  # fmt: skip
    distances = np.sqrt(((vectors[:, None, :] - vectors[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(distances, np.inf)
    assert fresh == pytest.approx(np.sort(distances, axis=1)[:, :3].mean(axis=1))


def test_novelty_in_code_space_and_the_judges_penalty():
    policy = archive_of(
        {"A": {"a": True, "b": True}, "B": {"a": True, "b": False}, "C": {"a": False, "b": False}}
    )
    # code vectors: A and B close together, C far away; a member without one has no novelty
    policy.population.code.update({"A": np.array([0.0, 0.0]), "B": np.array([0.0, 1.0])})
    policy.population.code["C"] = np.array([3.0, 4.0])
    candidates = policy.candidates([])
    # k = 1: A's nearest is B (1), B's is A (1), C's is B (sqrt 18)
    assert Novelty(space="code", k=1).novelty(policy, candidates) == pytest.approx(
        [1.0, 1.0, math.sqrt(18)]
    )
    del policy.population.code["C"]
    assert Novelty(space="code", k=1).novelty(policy, candidates) == pytest.approx([1, 1, 0])
    assert Novelty(space="code").needs == {"code"}
    assert Novelty(judge=True).needs == {"verdicts"}
    # a member the judge found dull keeps judge_penalty of its weight
    policy.population.judged("B", False)
    plain = Novelty(weight=0.0).weights(candidates)
    judged = Novelty(weight=0.0, judge=True, judge_penalty=0.25).weights(candidates)
    assert judged == pytest.approx(plain * np.array([1.0, 0.25, 1.0]))
