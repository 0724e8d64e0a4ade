"""Worker utilisation of the scheduler, async (HGM) against generational (DGM) mode.

    .venv/bin/python scripts/perf/scheduler.py [--workers 8] [--expansions 40] [--seed 1]

A synthetic workload with heterogeneous durations runs through the real policy and scheduler:
expansions take 0.2-3 s, evaluations 0.02-1.5 s (log-normal), children pass their own tests
80% of the time, and a node resolves a task with a probability that is its own hidden quality.
Staged evaluation: 6 tasks, then 12 more for nodes that solve at least 40% of the first 6.
Utilisation is the time workers spend on units over workers x wall time: until the expansion
budget is spent (from then on no unit may start), and with the drain of the units in flight.
"""

from __future__ import annotations

import argparse
import itertools
import random
import threading
import time

from dgm.scheduler import Report, Scheduler
from dgm.search import Evaluated, Expanded, Member, Population, Stage, Unit, make_search

SMALL = [f"t{i}" for i in range(6)]
MEDIUM = [f"t{i}" for i in range(6, 18)]


def run(mode: str, workers: int, expansions: int, seed: int) -> Report:
    rng = random.Random(seed)
    lock = threading.Lock()
    quality = {"seed": 0.5}
    population = Population()
    population.add(Member("seed", None))
    search = make_search(
        "score_child_prop", {}, population, [Stage(SMALL, 0.4), Stage(MEDIUM)], mode=mode,
        generation_size=workers, rng=random.Random(seed),
    )  # fmt: skip
    ids = itertools.count(1)
    started = {"expand": 0}

    def execute(unit: Unit):
        with lock:
            duration = rng.lognormvariate(0, 0.7) * (0.8 if unit.kind == "expand" else 0.2)
            passed = rng.random()
        time.sleep(min(duration, 3.0 if unit.kind == "expand" else 1.5))
        if unit.kind == "expand":
            with lock:
                child = f"n{next(ids)}"
                quality[child] = min(0.95, max(0.05, quality[unit.node] + rng.gauss(0, 0.1)))
            return Expanded(child, passed < 0.8)
        return Evaluated(passed < quality[unit.node])

    def on_start(unit: Unit) -> None:
        if unit.kind == "expand":
            started["expand"] += 1

    def spent() -> str | None:
        return "expansions" if started["expand"] >= expansions else None

    scheduler = Scheduler(
        workers, search.ask, execute, finished=search.tell, started=on_start, spent=spent
    )
    return scheduler.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--expansions", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(
        f"scheduler: {args.workers} workers, {args.expansions} expansions, staged evaluation "
        "6 + 12 tasks, synthetic durations"
    )
    for mode in ("async", "generational"):
        report = run(mode, args.workers, args.expansions, args.seed)
        target = "   (target >= 95%)" if mode == "async" else ""
        print(
            f"{mode:<13} utilisation {report.utilisation(report.stopped_s) * 100:5.1f}% until "
            f"the budget stop, {report.utilisation() * 100:5.1f}% with the drain; "
            f"{report.units_done} units in {report.wall_s:5.1f} s{target}"
        )


if __name__ == "__main__":
    main()
