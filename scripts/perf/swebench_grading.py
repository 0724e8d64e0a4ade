"""Per-task SWE-bench grading: our path against swebench's own `run_evaluation`, on the same
local instance images, on this machine, in the same run.

    .venv/bin/python scripts/perf/swebench_grading.py [--rounds 3]

Each round grades every built-in instance's gold patch both ways, alternating: ours
(`SWEBenchBenchmark.grade`: fresh container, apply chain, eval script, `docker rm -f`) and
swebench's `run_instance` (what `run_evaluation` runs per instance, in-process, so Python's
start-up is not counted against it). Prints the median time per task of each and the
difference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid

from archive.records import EvalStatus
from benchmarks.swebench_suite import builtin_swebench
from sandbox.docker_sandbox import DockerSandbox, connect
from sandbox.images import ensure_base_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from swebench.harness.run_evaluation import run_instance
    from swebench.harness.utils import make_test_spec

    client = connect()
    base = ensure_base_image(client)
    bench = builtin_swebench(lambda s: DockerSandbox(base, s, client=client), client)
    tasks = bench.tasks()
    for task in tasks:
        bench.image(task)  # built before timing
    ours: list[float] = []
    theirs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="dgm-perf-") as tmp:
        os.chdir(tmp)  # run_instance writes logs/run_evaluation/... here
        for _ in range(args.rounds):
            for task in tasks:
                start = time.monotonic()
                outcome = bench.grade(task, bench.reference_patch(task))
                ours.append(time.monotonic() - start)
                assert outcome.status is EvalStatus.RESOLVED, outcome.log

                row = bench.row(task)
                prediction = {
                    "instance_id": task,
                    "model_patch": row["patch"],
                    "model_name_or_path": "gold",
                }
                start = time.monotonic()
                _, report = run_instance(
                    make_test_spec(row), prediction, client, f"perf-{uuid.uuid4().hex[:8]}", 1800
                )
                theirs.append(time.monotonic() - start)
                assert report[task]["resolved"], report
    print(f"swebench_grading: {len(tasks)} built-in instances x {args.rounds} rounds, gold patches")
    mine, other = statistics.median(ours), statistics.median(theirs)
    print(f"dgm grade                 median {mine * 1000:8.1f} ms per task")
    print(f"swebench run_instance     median {other * 1000:8.1f} ms per task")
    print(f"difference                       {(other - mine) * 1000:8.1f} ms per task saved")


if __name__ == "__main__":
    main()
