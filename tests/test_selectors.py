"""Each selector's formula and HGM's rules, quoted and checked on hand-computed cases."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest
from scipy.stats import beta

from dgm.config import ConfigError, load_config
from dgm.search import Evaluated, Expanded, Member, Population, Stage, Unit, make_search
from dgm.search.generations import Generations
from dgm.search.hgm import CMP
from dgm.search.novelty import Novelty
from dgm.search.parents import Best, Candidates, RandomSelector, ScoreChildProp, ScoreProp

TASKS = ["a", "b", "c", "d"]


def tree(results: dict[str, dict[str, bool | None]], parents: dict[str, str | None]) -> Population:
    """A population grown in the order given, with each node's results, every node admitted
    (as cmp admits a child that passed its tests)."""
    population = Population()
    for node, parent in parents.items():
        found = {task: Evaluated(r) for task, r in results.get(node, {}).items()}
        population.add(Member(node, parent), found)
        population.decide(node, True)
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
    population.record("x", "a", Evaluated(True))  # moves its ancestors' clade counts only
    population.record("z", "c", Evaluated(False))  # a harness error tried again
    assert counts(population, "r") == (1, 1, 4, 4)
    x_s, _, x_clade_s, x_clade_f = counts(population, "x")
    assert (x_s, x_clade_s, x_clade_f) == (1, 3, 1)
    assert counts(population, "z")[:2] == (2, 1) and population.evaluations == 9


def cmp(population: Population, tasks=TASKS, **options) -> CMP:
    return CMP(population, [Stage(tasks)], rng=random.Random(0), **options)


def test_cmp_evaluates_the_root_then_expands_it_as_hgm_starts():
    # hgm.py initialize_run evaluates the initial agent on the tasks; then it runs
    # `range(len(nodes) - 1, min(5, int(max_workers ** alpha)))` expansions and waits for them
    search = cmp(tree({}, {"r": None}), workers=8)
    assert search.initial_expansions == 3  # int(8 ** 0.6) = 3 < 5
    owed = [search.ask() for _ in TASKS]
    assert all(u.kind == "evaluate" and u.node == "r" for u in owed)
    assert search.ask() is None  # the root's tasks in flight: nothing else yet
    for unit in owed:
        search.tell(unit, Evaluated(unit.task == "a"))
    started = [search.ask() for _ in range(3)]
    assert started == [Unit("expand", "r")] * 3
    assert search.ask() is None  # HGM waits for its initial expansions
    for i, unit in enumerate(started):
        search.tell(unit, Expanded(f"c{i}", usable=True))
    assert search.ask() is not None and cmp(tree({}, {"r": None})).initial_expansions == 5


def test_cmp_expands_when_n_to_the_alpha_reaches_the_nodes_as_hgm_counts_them():
    # hgm.py: `n_task_evals ** alpha >= len(nodes) - 1 + n_pending_expands`: the root is not
    # counted among the nodes, nor its evaluations among the task evaluations
    results = {"r": dict.fromkeys("abcd", True), "x": {"a": True, "b": False, "c": False}}
    population = tree(results, {"r": None, "x": "r", "y": "r"})
    population.expansions["r"] = 2  # the initial expansions are behind it
    search = cmp(population, initial_expansions=2)
    # n = 3 (x's; the root's 4 do not count): 3^0.6 = 1.93 < 2 nodes -> evaluate
    unit = search.ask()
    assert unit.kind == "evaluate"
    search.tell(unit, Evaluated(False))
    # n = 4: 4^0.6 = 2.30 >= 2 -> expand; one in flight counts as a node: 2.30 < 3 -> evaluate
    expansion = search.ask()
    assert expansion.kind == "expand"
    assert search.ask().kind == "evaluate"  # in flight now: n = 5, 5^0.6 = 2.63 < 3


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
    search = CMP(population, [Stage(tasks)], rng=random.Random(3))
    n = 4000
    expanded = Counter(search._expansion().node for _ in range(n))
    # hgm.py expands among `node.mean_utility > 0`: r, with no success of its own, never is;
    # P(winner) for Beta(1 + N_s, 1 + N_f): x ~ Beta(9, 1), y ~ Beta(3, 1)
    assert set(expanded) == {"x", "y"}
    exact_x = beta(9, 1).expect(lambda t: beta(3, 1).cdf(t))  # P(draw_x > draw_y)
    assert expanded["x"] / n == pytest.approx(exact_x, abs=0.02)
    # evaluation: only r and y have untried tasks; Beta(1 + 0, 1 + 4) against Beta(3, 1)
    evaluated = Counter(search._evaluation().node for _ in range(n))
    assert set(evaluated) <= {"r", "y"}
    exact_r = beta(1, 5).expect(lambda t: beta(3, 1).cdf(t))  # P(draw_r > draw_y)
    assert evaluated["r"] / n == pytest.approx(exact_r, abs=0.02)


def test_tau_is_the_budget_over_what_is_left_of_it():
    population = tree({"r": {"a": True, "b": False}}, {"r": None})
    search = cmp(population, evaluation_budget=10)
    assert search.tau() == pytest.approx(10 / 8)
    search.in_flight.append(Unit("evaluate", "r", "c"))
    assert search.tau() == pytest.approx(10 / 7)
    assert cmp(population, tau=2.0).tau() == 2.0
    assert cmp(population).tau() == 1.0  # no budget
    spent = cmp(population, evaluation_budget=2)
    assert spent.tau() == 10_000  # hgm.py's factor once n reaches max_task_evals


def test_cmps_answer_is_the_highest_epsilon_percentile():
    # 1% percentile of Beta(1 + n_s, 1 + n_f): 9/10 beats 1/1, whose mean (2/3) is lower but
    # whose few results leave it uncertain; 90/100 beats 9/10
    population = tree(
        {"few": {"a": True}, "some": dict.fromkeys("abcdefghi", True) | {"j": False}},
        {"few": None, "some": "few"},
    )
    assert beta.ppf(0.01, 10, 2) > beta.ppf(0.01, 2, 1)
    assert cmp(population).answer() == "some"
    for i in range(100):
        population.record("few", f"t{i}", Evaluated(i >= 10))  # now 91/101
    assert beta.ppf(0.01, 92, 11) > beta.ppf(0.01, 10, 2)
    assert cmp(population).answer() == "few"
    assert cmp(tree({}, {"r": None})).answer() is None


def test_selectors_are_named_in_the_config_with_their_constants(tmp_path):
    assert isinstance(make_search("cmp", {"alpha": 0.5}, Population(), []), CMP)
    novelty = make_search("novelty", {"k": 3}, Population(), [])
    assert isinstance(novelty, Generations) and novelty.selector.k == 3
    with pytest.raises(ValueError, match="unknown selector 'nope'"):
        make_search("nope", {}, Population(), [])
    config = load_config(None, ["selector.name=cmp", "selector.params={alpha: 0.7, epsilon: 0.05}"])
    assert config.selector.params == {"alpha": 0.7, "epsilon": 0.05}
    with pytest.raises(ConfigError, match=r"selector: .*unexpected keyword argument 'alfa'"):
        load_config(None, ["selector.name=cmp", "selector.params={alfa: 0.7}"])
    with pytest.raises(ConfigError, match=r"use scheduler\.mode async"):
        load_config(None, ["selector.name=cmp", "scheduler.mode=generational"])


def archive_of(results: dict[str, dict[str, bool | None]]) -> Generations:
    """A search over tasks a, b whose members are all admitted, in the order given."""
    population = tree(results, dict.fromkeys(results))
    for node in results:
        population.decide(node, True)
    return Generations(population, [Stage(["a", "b"])], Novelty(), rng=random.Random(0))


def test_novelty_is_the_mean_distance_to_the_k_nearest_in_behaviour_space():
    # A = (1, 1), B = (1, 0), C = (0, 0): |AB| = |BC| = 1, |AC| = sqrt 2
    policy = archive_of(
        {"A": {"a": True, "b": True}, "B": {"a": True, "b": False}, "C": {"a": False, "b": False}}
    )
    candidates = policy.candidates()
    far = (1 + math.sqrt(2)) / 2
    assert Novelty(k=2).novelty(candidates) == pytest.approx([far, 1.0, far])
    assert Novelty(k=1).novelty(candidates) == pytest.approx([1.0, 1.0, 1.0])
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
    policy = Generations(population, [Stage(tasks)], kept, rng=random.Random(0))
    for i in range(60):
        # some tasks untried (0.5 in behaviour space)
        results = {t: Evaluated(rng.random() < 0.5) for t in tasks if rng.random() < 0.8}
        population.add(Member(f"n{i}", None), results)
        population.decide(f"n{i}", True)
        if i % 7 == 0 or i == 59:  # decisions now and then: the index follows the archive
            kept.novelty(policy.candidates())
    candidates = policy.candidates()
    fresh = Novelty(k=3).novelty(candidates)
    assert kept.novelty(candidates) == pytest.approx(fresh)
    vectors = np.array(
        [[{True: 1.0, False: 0.0}.get(r.resolved if (r := population.members[n].results.get(t))
                                      else None, 0.5) for t in tasks]
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
    candidates = policy.candidates()
    # k = 1: A's nearest is B (1), B's is A (1), C's is B (sqrt 18)
    assert Novelty(space="code", k=1).novelty(candidates) == pytest.approx(
        [1.0, 1.0, math.sqrt(18)]
    )
    del policy.population.code["C"]
    assert Novelty(space="code", k=1).novelty(candidates) == pytest.approx([1, 1, 0])
    assert Novelty(space="code").needs == {"code"}
    assert Novelty(judge=True).needs == {"verdicts"}
    # a member the judge found dull keeps judge_penalty of its weight
    policy.population.judged("B", False)
    plain = Novelty(weight=0.0).weights(candidates)
    judged = Novelty(weight=0.0, judge=True, judge_penalty=0.25).weights(candidates)
    assert judged == pytest.approx(plain * np.array([1.0, 0.25, 1.0]))
