"""Selectors compared by simulation, and the time one selection decision takes.

    .venv/bin/python scripts/perf/selection.py [--seeds 50] [--evaluations 600]

For each selector and landscape (mismatch, aligned, independent; see `dgm/simulate.py`): the
mean and 95% interval over the seeds of the true pass rate of the run's answer after a fixed
evaluation budget, the best true pass rate any node reached, and HGM's Table 1 measure, the
correlation of each node's score with its clade's best true pass rate.

Then the median wall time of one decision (`search.ask`) in an archive of 10,000 nodes,
each with 10 results; target < 10 ms. The first decision is shown apart: novelty builds its
nearest-neighbour index then (and again after a restart), later ones update it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np

from dgm.search import Evaluated, Member, Population, Stage, make_search
from dgm.simulate import Landscape, Simulation, interval, simulate

SELECTORS = [
    ("cmp", {}), ("score_child_prop", {}), ("score_prop", {}), ("novelty", {}),
    ("novelty", {"space": "code"}), ("novelty", {"space": "code", "judge": True}),
    ("random", {}), ("best", {}),
]  # fmt: skip
CODE_DIMS = 384  # all-MiniLM-L6-v2's embeddings
LANDSCAPES = ["mismatch", "aligned", "independent"]


def compare(seeds: int, evaluations: int) -> None:
    print(
        f"true pass rate of the answer after {evaluations} evaluations, "
        f"mean [95% interval] over {seeds} seeds"
    )
    header = f"{'landscape':12} {'selector':30} {'answer':>22} {'best found':>22} "
    print(header + f"{'r(score, clade best)':>21} {'nodes':>6} {'s/run':>6}")
    for kind in LANDSCAPES:
        for name, params in SELECTORS:
            plan = Simulation(
                selector=name,
                params=params,
                evaluations=evaluations,
                landscape=Landscape(kind=kind),
            )
            start = time.perf_counter()
            results = [simulate(plan, seed) for seed in range(seeds)]
            seconds = (time.perf_counter() - start) / seeds
            answer = interval([r.answer for r in results])
            found = interval([r.found for r in results])
            r = interval([r.correlation for r in results])
            nodes = statistics.mean(r.nodes for r in results)
            print(
                f"{kind:12} {_named(name, params):30} {_shown(answer):>22} {_shown(found):>22} "
                f"{r[0]:>21.2f} {nodes:>6.0f} {seconds:>6.2f}"
            )


def decision_time(nodes: int = 10_000, decisions: int = 200) -> None:
    rng = random.Random(0)
    tasks = [f"t{i}" for i in range(60)]
    print(f"\none selection decision in an archive of {nodes:,} nodes (target < 10 ms)")
    for name, params in SELECTORS:
        population = Population()
        for i in range(nodes):
            parent = f"n{rng.randrange(i)}" if i else None
            # never all resolved: nobody owes the second stage
            results = {t: Evaluated(t != "t0" and rng.random() < 0.4) for t in tasks[:10]}
            population.add(Member(f"n{i}", parent), results)
            if parent:  # its expansion made this child (as `run_population` counts them)
                population.expansions[parent] += 1
            population.decide(f"n{i}", True)
            population.judged(f"n{i}", rng.random() < 0.5)
            vector = [rng.gauss(0, 1) for _ in range(CODE_DIMS)]
            population.code[f"n{i}"] = np.array(vector) / np.linalg.norm(vector)
        # stage 1: 10 tasks; a score of 1.0 to go on
        stages = [Stage(tasks[:10], 1.0), Stage(tasks[10:])]
        search = make_search(
            name, params, population, stages, rng=random.Random(1), evaluation_budget=200_000
        )
        times = []
        kinds = set()
        for _ in range(decisions):
            start = time.perf_counter()
            unit = search.ask()
            times.append(time.perf_counter() - start)
            kinds.add(unit.kind if unit else "none")
            search.in_flight.clear()  # forgotten: every decision is taken in the same state
        p95 = sorted(times)[int(0.95 * decisions)]
        print(
            f"  {_named(name, params):30} median {statistics.median(times) * 1000:6.2f} ms"
            f"  (p95 {p95 * 1000:6.2f} ms, first {times[0] * 1000:7.2f} ms; "
            f"units: {', '.join(sorted(kinds))})"
        )


def _named(name: str, params: dict) -> str:
    return name + "".join(f" {k}={v}" for k, v in params.items())


def _shown(values: tuple[float, float, float]) -> str:
    mean, low, high = values
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--evaluations", type=int, default=600)
    args = parser.parse_args()
    compare(args.seeds, args.evaluations)
    decision_time()


if __name__ == "__main__":
    main()
