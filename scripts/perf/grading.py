"""Grading time per task: the built-in Polyglot Python suite, each task in a fresh sandbox.

    .venv/bin/python scripts/perf/grading.py [--backend docker|bwrap]

Grades every exercise's reference solution and its untouched starting code, and prints the
median time of one grading (sandbox start, copy-in, patch, tests, removal).
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks.polyglot import PolyglotBenchmark
from sandbox.base import Backend
from sandbox.factory import open_sandbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", type=Backend, default=Backend.DOCKER)
    args = parser.parse_args()
    bench = PolyglotBenchmark(lambda settings: open_sandbox(args.backend, settings))
    times: dict[str, list[float]] = {"reference": [], "baseline": []}
    for task in bench.tasks():
        for kind, patch in (("reference", bench.reference_patch(task)), ("baseline", "")):
            outcome = bench.grade(task, patch)
            times[kind].append(outcome.duration_s)
    print(f"grading: {len(bench.tasks())} Python exercises, {args.backend.value} sandboxes")
    for kind, samples in times.items():
        print(f"polyglot python {kind:<10} median {statistics.median(samples) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
