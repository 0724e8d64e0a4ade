"""A unit as data: what travels to the machine that runs it (the agent's code as a tar of its
tree, never a shared folder), and running it there with that machine's FM gateway, sandboxes
and benchmark. No archive is involved: what `perform` returns travels back, and the run's
scheduler records it."""

from __future__ import annotations

import functools
import io
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from archive.records import EvaluationResult
from benchmarks.agent_run import AgentLimits
from benchmarks.base import Benchmark
from dgm import expand
from dgm.evaluate import attempt
from dgm.gateway.unit_gateway import UnitGateway
from sandbox.base import Backend, Sandbox, SandboxSettings


@dataclass(frozen=True)
class BenchmarkSpec:
    """How a machine opens the run's benchmark (its files must be at `path` there too)."""

    name: str
    path: str | None
    backend: Backend
    pull: bool = False


@functools.lru_cache(maxsize=4)
def open_spec(spec: BenchmarkSpec) -> Benchmark:
    """The benchmark, opened once per process."""
    from benchmarks.registry import open_benchmark

    return open_benchmark(spec.name, spec.path, backend=spec.backend, pull=spec.pull)


@dataclass(frozen=True)
class EvaluateWork:
    unit: str
    """The unit's name while it runs (its FM tokens' and sandboxes' labels)."""
    node_id: str
    agent: bytes
    task: str
    model: str
    limits: AgentLimits
    stage: str
    sandbox: SandboxSettings


@dataclass(frozen=True)
class ExpandWork:
    unit: str
    plan: expand.Plan
    agent: bytes
    settings: expand.ExpansionSettings
    sandbox: SandboxSettings


Work = EvaluateWork | ExpandWork
Result = EvaluationResult | expand.Attempt


@dataclass
class Place:
    """What the machine running a unit gives it."""

    gateway: UnitGateway
    new_sandbox: Callable[[SandboxSettings], Sandbox]
    benchmark: Benchmark
    abandoned: Callable[[], bool] = lambda: False


def perform(work: Work, place: Place) -> Result:
    with tempfile.TemporaryDirectory(prefix="dgm-unit-") as tmp:
        agent = Path(tmp) / "agent"
        untar(work.agent, agent)
        if isinstance(work, EvaluateWork):
            return attempt(
                agent, place.benchmark, work.task, node_id=work.node_id, gateway=place.gateway,
                new_sandbox=place.new_sandbox, model=work.model, sandbox_settings=work.sandbox,
                limits=work.limits, stage=work.stage,
            )  # fmt: skip
        return expand.attempt(
            work.plan, agent, gateway=place.gateway, new_sandbox=place.new_sandbox,
            settings=work.settings, sandbox_settings=work.sandbox, unit_id=work.unit,
            abandoned=place.abandoned,
        )  # fmt: skip


def untar(data: bytes, folder: Path) -> None:
    """Write a tree's tar (from `GitStore.tar`) into a new folder: no member leaves it, and
    links are written as links, never followed."""
    folder.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(folder, filter="tar")
