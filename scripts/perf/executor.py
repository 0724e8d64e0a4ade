"""Per-unit overhead of the Ray executor against the local one, and utilisation on 2 nodes.

    .venv/bin/python scripts/perf/executor.py [--units 8]

Then what the head does per unit, which bounds how many units a cluster can keep in flight:
the agent's tar, recording a result, recording an FM call, and a reserve + settle round trip
to the run's desk (the ledger every node's gateway asks).

The same synthetic workload through each executor: the seed agent evaluated on built-in
Polyglot tasks in Docker sandboxes, the scripted FM answering at once with an edit (so each
unit runs the agent, takes its patch and grades it). The Ray cluster is two nodes on this
machine with one Docker slot each (as the tests start it); the local executor runs two
worker threads. Overhead is the difference in mean unit time; utilisation is worker time
spent on units over workers x wall time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # never report usage outward

from archive import Archive
from archive.records import EvalStatus, EvaluationResult, FMCall, Origin
from benchmarks.agent_run import AgentLimits
from benchmarks.registry import open_benchmark
from dgm.config import ExecutorConfig
from dgm.executors import open_executor
from dgm.expand import SEED_AGENT
from dgm.gateway import GatewaySettings, Spend, Upstream
from dgm.scheduler import Report, Scheduler
from dgm.unit_work import BenchmarkSpec, EvaluateWork
from sandbox.base import Backend, SandboxSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.scripted_fm import Reply, Request, ScriptedFM, ToolCall


def respond(request: Request) -> Reply:
    if request.body["messages"][-1]["role"] == "tool":
        return Reply("Done.")
    note = {"command": "create", "path": "TRIED.md", "file_text": "tried\n"}
    return Reply("", [ToolCall("editor", note)])


def cluster():
    from ray.cluster_utils import Cluster

    head = {"num_cpus": 1, "resources": {"docker": 1}, "include_dashboard": False}
    started = Cluster(initialize_head=True, head_node_args=head)
    started.add_node(num_cpus=1, resources={"docker": 1})
    return started


def in_pairs(executor, works: list[EvaluateWork]) -> Report:
    """The units two at a time, each as soon as one of the two is free."""
    return Scheduler(2, lambda: works.pop() if works else None, executor.perform).run()


def per_call(action, times: int) -> float:
    """Mean milliseconds of `action()`."""
    begun = time.perf_counter()
    for _ in range(times):
        action()
    return (time.perf_counter() - begun) * 1000 / times


def head_costs(archive: Archive, seed, run_id: str, address: str) -> list[tuple[str, float]]:
    """Milliseconds of each thing the head does per unit or per FM call."""
    import ray

    from dgm.executors.ray_cluster import RunDesk
    from dgm.gateway import Budget

    result = EvaluationResult(
        "builtin-polyglot", "python/shout", EvalStatus.UNRESOLVED, stage="default",
        duration_s=1.0, cost_usd=0.0, model="agent-model", limits="x", log=b"log " * 500,
        patch=b"diff " * 200, trajectory=b"{}" * 2000,
    )  # fmt: skip
    call = FMCall(provider="openai", model="m", input_tokens=1000, output_tokens=100,
                  cost_usd=0.0, latency_s=1.0, status="ok", run_id=run_id)  # fmt: skip
    costs = [
        ("tar of the seed agent", per_call(lambda: archive.git.tar(seed.commit), 50)),
        ("a result recorded", per_call(lambda: archive.record_evaluations(seed.id, [result]), 100)),
        ("an FM call recorded", per_call(lambda: archive.record_fm_call(call), 200)),
    ]
    ray.init(address=address, log_to_driver=False)
    try:
        desk = RunDesk.remote(run_id, Budget(), Spend())
        worst = Spend(2000, 0.0)

        def round_trip() -> None:
            ray.get(desk.reserve.remote(worst))
            ray.get(desk.settle.remote(call, worst))

        costs.append(("desk reserve + settle", per_call(round_trip, 500)))

        def many_at_once(n: int = 2000) -> None:  # as many gateways' calls arrive together
            ray.get([desk.reserve.remote(worst) for _ in range(n)])
            ray.get([desk.settle.remote(call, worst) for _ in range(n)])

        costs.append(("desk call, 4,000 at once", per_call(many_at_once, 3) / 4000))
    finally:
        ray.shutdown()
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=8)
    args = parser.parse_args()
    spec = BenchmarkSpec("builtin-polyglot", None, Backend.DOCKER)
    bench = open_benchmark(spec.name, backend=spec.backend)
    tasks = (bench.tasks() * args.units)[: args.units]
    ray_cluster = cluster()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp, ScriptedFM(responder=respond) as fm:
            os.environ |= {"OPENAI_API_KEY": "sk-perf", "OPENAI_BASE_URL": fm.openai_base_url}
            archive = Archive.init(Path(tmp) / "archive")
            seed = archive.add_node(SEED_AGENT, origin=Origin.SEED, proposal="seed")
            agent = archive.git.tar(seed.commit)
            upstream = Upstream(base_url=fm.openai_base_url, api_key="sk-perf")
            settings = GatewaySettings(openai=upstream)
            for name in ("local", "ray"):
                run = archive.create_run(f"perf-{name}", {})
                config = ExecutorConfig(name=name, address=ray_cluster.address)
                with open_executor(
                    config, run_id=run.id, benchmark=bench, spec=spec, gateway=settings,
                    archive=archive, spent=Spend(),
                ) as executor:  # fmt: skip
                    works = [
                        EvaluateWork(f"evaluate {i} {task}", seed.id, agent, task, "agent-model",
                                     AgentLimits(max_steps=3), "default", SandboxSettings())
                        for i, task in enumerate(tasks)
                    ]  # fmt: skip
                    executor.perform(works[0])  # warm: images, the node's gateway, imports
                    begun = time.monotonic()
                    report = in_pairs(executor, works)
                    wall = time.monotonic() - begun
                spans = [end - start for start, end in report.spans]
                rows.append((name, statistics.mean(spans), wall, report.utilisation()))
            costs = head_costs(archive, seed, run.id, ray_cluster.address)
            agent_kb = len(agent) / 1024
    finally:
        ray_cluster.shutdown()
    print(f"{args.units} units, 2 at a time (local: 2 threads; ray: 2 nodes, 1 docker slot each)")
    print(f"{'executor':10}{'mean unit s':>13}{'wall s':>9}{'utilisation':>13}")
    for name, mean, wall, used in rows:
        print(f"{name:10}{mean:13.2f}{wall:9.1f}{used:13.0%}")
    overhead = rows[1][1] - rows[0][1]
    print(f"Ray's overhead per unit: {overhead:+.2f} s")
    print(
        f"\nthe head, per unit or call (SQLite archive; the seed agent's tar is {agent_kb:.0f} KB):"
    )
    for what, ms in costs:
        print(f"{what:26}{ms:8.2f} ms")


if __name__ == "__main__":
    main()
