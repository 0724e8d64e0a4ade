"""Where a run's units run, under its scheduler: `local` (worker threads of this process, the
default) or `ray` (one Ray task per unit on a cluster's nodes). Either way a unit travels as
data (`dgm.unit_work`), what it made travels back, and the scheduler alone writes the archive.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from archive import Archive
from benchmarks.base import Benchmark
from dgm.config import ExecutorConfig
from dgm.gateway import Gateway, GatewaySettings, Spend
from dgm.unit_work import BenchmarkSpec, Result, Work


class Executor(Protocol):
    gateway: Gateway
    """The run's gateway on this machine: the safety review's and the judge's calls, and the
    run's budget."""

    def perform(self, work: Work) -> Result:
        """Run a unit where it runs (blocking; any thread); `Abandoned` once abandoned."""
        ...

    def abandon(self) -> None:
        """End every unit in flight; from now on `perform` raises `Abandoned`."""
        ...

    @property
    def abandoned(self) -> bool: ...

    def placements(self) -> list[tuple[str, str]]:
        """(unit, node) of each unit that started on a node since the last call."""
        ...


def check_executor(config: ExecutorConfig) -> None:
    """Refuse an executor that cannot start (ConfigError), before the run is touched."""
    if config.name == "ray":
        from dgm.executors.ray_cluster import check_address

        check_address(config.address)


@contextmanager
def open_executor(
    config: ExecutorConfig,
    *,
    run_id: str,
    benchmark: Benchmark,
    spec: BenchmarkSpec,
    gateway: GatewaySettings,
    archive: Archive,
    spent: Spend,
) -> Iterator[Executor]:
    """The run's executor, with its gateways started. `benchmark`: the run's, opened here;
    `spec`: how other machines open it; `spent`: what the run spent before."""
    if config.name == "ray":
        from dgm.executors.ray_cluster import RayExecutor

        executor: Executor = RayExecutor(config, run_id, spec, gateway, archive, spent)
    else:
        from dgm.executors.local import LocalExecutor

        executor = LocalExecutor(run_id, benchmark, spec.backend, gateway, archive, spent)
    with executor:  # type: ignore[attr-defined]
        yield executor
