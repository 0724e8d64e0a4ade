"""The run's policy (staged evaluation, admission, async and generational modes), DGM's parent
selection, and the worker pool: real threads, no archive."""

from __future__ import annotations

import random
import threading
import time

from dgm.policy import EvolutionPolicy, Member, Population, Unit
from dgm.scheduler import Scheduler
from dgm.selectors.parents import ScoreChildProp

SMALL, MEDIUM = ["a", "b"], ["c", "d", "e"]


def policy(mode="async", k=2) -> EvolutionPolicy:
    population = Population()
    population.add(Member("seed", None, admitted=True))
    return EvolutionPolicy(
        population, [SMALL, MEDIUM], [0.5, 0.0], ScoreChildProp(), mode=mode,
        generation_size=k, rng=random.Random(0),
    )  # fmt: skip


def test_staged_evaluation_then_expansion_then_admission():
    p = policy()
    assert p.next_unit(set()) == Unit("evaluate", "seed", "a")
    in_flight = {Unit("evaluate", "seed", "a"), Unit("evaluate", "seed", "b")}
    assert p.next_unit(in_flight) is None  # nothing to select from until the seed is scored
    p.evaluated("seed", "a", True)
    p.evaluated("seed", "b", False)
    assert p.next_unit(set()) == Unit("evaluate", "seed", "c")  # 1/2 >= 0.5: next stage
    for task in MEDIUM:
        p.evaluated("seed", task, None if task == "e" else True)  # a harness error counts as done
    assert p.next_unit(set()) == Unit("expand", "seed")
    p.expanded("seed", "broken", usable=False)  # its tests failed: never evaluated
    p.expanded("seed", "child", usable=True)
    assert p.next_unit(set()) == Unit("evaluate", "child", "a")
    p.evaluated("child", "a", False)
    p.evaluated("child", "b", False)
    assert p.owed(p.population.members["child"]) == []  # 0/2 < 0.5: no second stage
    assert p.to_admit(set()) == ["child"]
    p.population.admit("child")
    assert p.population.members["seed"].children == 1
    assert p.population.members["seed"].score() == (3, 4)


def test_an_expansion_limit_still_lets_owed_evaluations_run():
    p = policy()
    p.expansions_left = 1
    for task in SMALL + MEDIUM:
        p.evaluated("seed", task, True)
    assert p.next_unit(set()) == Unit("expand", "seed")
    assert p.next_unit(set()) is None and p.expansions_left == 0
    p.expanded("seed", "child", usable=True)
    assert p.next_unit(set()) == Unit("evaluate", "child", "a")


def test_generational_mode_waits_for_the_whole_generation():
    p = policy("generational", k=2)
    for task in SMALL + MEDIUM:
        p.evaluated("seed", task, True)
    first, second = p.next_unit(set()), p.next_unit({Unit("expand", "seed")})
    assert first == second == Unit("expand", "seed")
    assert p.next_unit({first}) is None  # k expansions started: wait for them
    p.expanded("seed", "c1", usable=True)
    p.expanded("seed", "c2", usable=False)
    unit = p.next_unit(set())
    assert unit == Unit("evaluate", "c1", "a")
    assert p.next_unit({unit, Unit("evaluate", "c1", "b")}) is None  # the barrier
    for task in SMALL:
        p.evaluated("c1", task, False)
    p.population.admit("c1")
    assert p.next_unit(set()).kind == "expand"  # the next generation


def test_the_scheduler_keeps_every_worker_busy_and_stops_on_a_budget():
    running, peak, lock = [0], [0], threading.Lock()

    class Endless:
        def __init__(self):
            self.n = 0

        def next_unit(self, in_flight):
            self.n += 1
            return Unit("evaluate", "n", f"t{self.n}")

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
        4, Endless(), execute, finished=lambda u, r: done.append(r),
        failed=lambda u, e: failed.append(u.task),
        spent=lambda: "evaluations" if len(done) >= 12 else None,
    )  # fmt: skip
    report = scheduler.run()
    assert report.reason == "evaluations" and peak[0] == 4
    assert failed == ["t3"] and len(done) >= 12 and report.units_done == len(done)
    assert report.utilisation(report.stopped_s) > 0.5


def test_abandoning_does_not_wait_for_units_in_flight():
    class One:
        def next_unit(self, in_flight):
            return None if in_flight else Unit("expand", "x")

    scheduler = Scheduler(1, One(), lambda unit: time.sleep(30))
    threading.Timer(0.3, lambda: scheduler.stop("interrupted", abandon=True)).start()
    start = time.monotonic()
    report = scheduler.run()
    assert report.reason == "interrupted" and time.monotonic() - start < 5
