"""The search's shared rules (staged evaluation, admission, DGM's generations), driven only
through ask and tell, and the worker pool: real threads, no archive."""

from __future__ import annotations

import random
import threading
import time

import pytest

from dgm.scheduler import Scheduler
from dgm.search import Evaluated, Expanded, Member, Population, Stage, Unit, make_search

SMALL, MEDIUM = ["a", "b"], ["c", "d", "e"]
PASS, FAIL, EMPTY, ERROR = (
    Evaluated(True),
    Evaluated(False),
    Evaluated(False, False),
    Evaluated(None),
)


def search(name="score_child_prop", mode="async", k=2, stages=None, **options):
    population = Population()
    population.add(Member("seed", None))
    stages = stages or [Stage(SMALL, 0.5), Stage(MEDIUM)]
    return make_search(
        name, {}, population, stages, mode=mode, generation_size=k, rng=random.Random(0),
        **options,
    )  # fmt: skip


def answer_all(s, node: str, result: Evaluated = PASS) -> list[Unit]:
    """Ask for and tell `result` of every evaluation `node` owes; the units asked for."""
    asked = []
    while s.owed(s.population.members[node]):
        unit = s.ask()
        assert (unit.kind, unit.node) == ("evaluate", node), unit
        asked.append(unit)
        s.tell(unit, result)
    return asked


def test_staged_evaluation_then_expansion_then_admission():
    s = search()
    first = s.ask()
    assert first == Unit("evaluate", "seed", "a")
    second = s.ask()
    assert second == Unit("evaluate", "seed", "b")
    assert s.ask() is None  # nothing to select from until the seed is scored
    s.tell(first, PASS)
    assert s.tell(second, FAIL) == []  # 1/2 >= 0.5: the next stage is owed, no decision yet
    for unit in iter(s.ask, None):
        if unit.kind == "expand":
            break
        s.tell(unit, ERROR if unit.task == "e" else PASS)  # a harness error counts as done
    assert unit == Unit("expand", "seed") and s.population.members["seed"].admitted
    s.tell(unit, Expanded("broken", usable=False))  # its tests failed: never evaluated
    child = s.ask()
    s.tell(child, Expanded("child", usable=True))
    assert [s.ask(), s.ask()] == [Unit("evaluate", "child", "a"), Unit("evaluate", "child", "b")]
    s.tell(Unit("evaluate", "child", "a"), FAIL)
    [decision] = s.tell(Unit("evaluate", "child", "b"), FAIL)  # 0/2 < 0.5: no second stage
    assert (decision.node, decision.admitted) == ("child", True)
    assert s.population.members["seed"].children == 1
    assert s.population.members["seed"].score() == (3, 4)


def test_a_child_that_made_only_empty_patches_is_not_admitted():
    # DGM's is_compiled_self_improve: "There is at least one non-empty patch
    # (resolved + unresolved > 0)"; the seed is in the archive whatever it did
    s = search(stages=[Stage(SMALL)])
    answer_all(s, "seed", EMPTY)
    assert s.population.members["seed"].admitted
    for unit, child in zip([s.ask(), s.ask()], ("empty", "patched"), strict=True):
        s.tell(unit, Expanded(child, usable=True))
    decisions = []
    for unit in [s.ask() for _ in range(4)]:
        result = EMPTY if unit.node == "empty" or unit.task == "b" else FAIL
        decisions += s.tell(unit, result)
    verdicts = {d.node: (d.admitted, d.reason) for d in decisions}
    assert verdicts == {
        "empty": (False, "no non-empty patch on its first stage"),
        "patched": (True, "staged evaluation complete"),
    }
    assert not s.population.members["empty"].usable  # never a parent, never evaluated again


def test_the_seed_is_evaluated_on_its_first_stage_before_any_expansion():
    for mode in ("async", "generational"):
        s = search(mode=mode)
        owed = [s.ask(), s.ask()]
        assert [u.kind for u in owed] == ["evaluate", "evaluate"] and s.ask() is None, mode
        s.tell(owed[0], FAIL)
        assert s.ask() is None, mode  # one of its first stage still in flight
        s.tell(owed[1], FAIL)  # 0/2 < 0.5: no second stage
        assert s.ask() == Unit("expand", "seed"), mode


def test_dgms_full_evaluation_threshold():
    # DGM_outer.py get_full_eval_threshold: "Get threshold, second highest score", "Ensure
    # threshold is at least 0.4"; the seed counts, and the members evaluated on every task
    stages = [Stage(["a"], 0.0), Stage(["b"], "dgm"), Stage(["c", "d"])]
    s = search(stages=stages)
    asked = answer_all(s, "seed", FAIL)
    assert [u.task for u in asked] == ["a", "b"]  # 0/2 < max(0.4, 0): not fully evaluated
    for unit, child in zip([s.ask(), s.ask()], ("x", "y"), strict=True):
        s.tell(unit, Expanded(child, usable=True))
    assert [u.task for u in answer_all(s, "x", PASS)] == ["a", "b", "c", "d"]  # 2/2 >= 0.4
    # now the scores are x 4/4 and the seed 0/2: the second best is 0.0, the floor 0.4 holds
    assert s._full_eval_threshold() == 0.4
    s.tell(s.ask(), PASS)
    s.tell(s.ask(), FAIL)  # y: 1/2 >= 0.4: on to the full evaluation
    assert {s.ask(), s.ask()} == {Unit("evaluate", "y", "c"), Unit("evaluate", "y", "d")}


def test_an_expansion_limit_still_lets_owed_evaluations_run():
    s = search()
    s.expansions_left = 1
    answer_all(s, "seed")
    unit = s.ask()
    assert unit == Unit("expand", "seed")
    assert s.ask() is None and s.expansions_left == 0
    s.tell(unit, Expanded("child", usable=True))
    assert s.ask() == Unit("evaluate", "child", "a")


def test_generational_mode_waits_for_the_whole_generation():
    s = search(mode="generational", k=2)
    answer_all(s, "seed")
    first, second = s.ask(), s.ask()
    assert first == second == Unit("expand", "seed")
    assert s.ask() is None  # k expansions started: wait for them
    s.tell(first, Expanded("c1", usable=True))
    s.tell(second, Expanded("c2", usable=False))
    unit, other = s.ask(), s.ask()
    assert (unit, other) == (Unit("evaluate", "c1", "a"), Unit("evaluate", "c1", "b"))
    assert s.ask() is None  # the barrier
    s.tell(unit, FAIL)
    s.tell(other, FAIL)
    assert s.ask().kind == "expand"  # the next generation


def test_a_unit_that_failed_is_not_asked_for_again():
    s = search()
    unit = s.ask()
    s.tell(unit, None)  # it raised: a harness error for an evaluation
    assert s.population.members["seed"].results[unit.task] == Evaluated(None, False)
    assert s.ask() == Unit("evaluate", "seed", "b")


def test_an_unknown_selector_or_a_wrong_mode_is_refused():
    with pytest.raises(ValueError, match="unknown selector 'nope'; choose one of best, cmp"):
        search("nope")
    with pytest.raises(ValueError, match=r"use scheduler\.mode async"):
        search("cmp", mode="generational")


def test_the_scheduler_keeps_every_worker_busy_and_stops_on_a_budget():
    running, peak, lock = [0], [0], threading.Lock()

    numbers = iter(range(1, 1000))

    def endless():
        return Unit("evaluate", "n", f"t{next(numbers)}")

    def execute(unit):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        if unit.task == "t3":
            raise RuntimeError("broken")
        return unit.task

    done, failed = [], []
    scheduler = Scheduler(
        4, endless, execute, finished=lambda u, r: done.append(r),
        failed=lambda u, e: failed.append(u.task),
        spent=lambda: "evaluations" if len(done) >= 12 else None,
    )  # fmt: skip
    report = scheduler.run()
    assert report.reason == "evaluations" and peak[0] == 4
    assert failed == ["t3"] and len(done) >= 12 and report.units_done == len(done)
    assert report.utilisation(report.stopped_s) > 0.5


def test_abandoning_does_not_wait_for_units_in_flight():
    once = [Unit("expand", "x")]
    scheduler = Scheduler(1, lambda: once.pop() if once else None, lambda unit: time.sleep(30))
    threading.Timer(0.3, lambda: scheduler.stop("interrupted", abandon=True)).start()
    start = time.monotonic()
    report = scheduler.run()
    assert report.reason == "interrupted" and time.monotonic() - start < 5


def test_a_child_held_at_admit_is_evaluated_but_never_a_parent_until_a_person_approves():
    s = search(stages=[Stage(SMALL)])
    answer_all(s, "seed", FAIL)
    s.tell(s.ask(), Expanded("flagged", usable=True, held=frozenset({"admit"})))
    assert s.gated == {"flagged"}
    decisions = []
    for unit in [s.ask(), s.ask()]:
        assert unit.node == "flagged"
        decisions += s.tell(unit, PASS)  # 2/2: the best member, and it waits
    assert [(d.node, d.admitted) for d in decisions] == [("flagged", None)]
    assert s.waiting == {"flagged": "admit"}
    for _ in range(20):  # every parent is the seed while a person has not decided
        unit = s.ask()
        assert unit == Unit("expand", "seed")
        s.tell(unit, Expanded(None))
    [approved] = s.release("flagged", approved=True)
    assert (approved.node, approved.admitted) == ("flagged", True)
    assert s.population.members["seed"].children == 1
    assert s.answer() == "flagged"


def test_a_rejected_child_never_counts_even_once_admitted():
    s = search(stages=[Stage(SMALL)])
    answer_all(s, "seed", FAIL)
    s.tell(s.ask(), Expanded("child", usable=True))
    for unit in [s.ask(), s.ask()]:
        s.tell(unit, PASS)
    assert s.population.members["child"].admitted and s.answer() == "child"
    [decision] = s.release("child", approved=False)
    assert decision.admitted is False
    child = s.population.members["child"]
    assert not child.admitted and not child.usable
    assert s.population.members["seed"].children == 0 and s.answer() == "seed"
    assert all(s.ask() == Unit("expand", "seed") for _ in range(5))


def test_a_child_held_at_promote_stops_after_its_first_stage_until_approved():
    s = search()  # SMALL (threshold 0.5), then MEDIUM
    answer_all(s, "seed", FAIL)
    s.tell(s.ask(), Expanded("flagged", usable=True, held=frozenset({"promote"})))
    decisions = []
    for unit in [s.ask(), s.ask()]:
        decisions += s.tell(unit, PASS)  # 2/2 >= 0.5 would go on: it waits instead
    assert [(d.node, d.admitted, d.reason) for d in decisions] == [
        ("flagged", None, "waits for a person at promote")
    ]
    assert s.ask() == Unit("expand", "seed")  # not a parent meanwhile
    assert s.release("flagged", approved=True) == []  # it owes its second stage now
    owed = {s.ask() for _ in MEDIUM}
    assert owed == {Unit("evaluate", "flagged", t) for t in MEDIUM}


def test_cmp_never_expands_a_node_held_at_admit_and_evaluates_one_held_at_promote_on_stage_one():
    population = Population()
    population.add(Member("r", None), {t: PASS for t in SMALL + MEDIUM})
    population.decide("r", True)
    stages = [Stage(SMALL), Stage(MEDIUM)]
    s = make_search("cmp", {"initial_expansions": 2}, population, stages, rng=random.Random(0))
    s.tell(s.ask(), Expanded("a", usable=True, held=frozenset({"admit"})))
    s.tell(s.ask(), Expanded("p", usable=True, held=frozenset({"promote"})))
    assert not s.population.members["a"].admitted  # waits at admit
    assert s.population.members["p"].admitted
    seen: dict[str, set[str]] = {"a": set(), "p": set(), "r": set()}
    for _ in range(60):
        unit = s.ask()
        if unit is None:
            break
        if unit.kind == "expand":
            assert unit.node != "a"
            s.tell(unit, Expanded(None))
        else:
            seen[unit.node].add(unit.task)
            s.tell(unit, PASS)
    assert seen["p"] <= set(SMALL) and seen["p"]  # its first stage only
    assert seen["a"]  # evaluated all the same
