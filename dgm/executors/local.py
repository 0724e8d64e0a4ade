"""Units in worker threads of the run's own process, on this machine's Docker."""

from __future__ import annotations

import socket

from archive import Archive
from benchmarks.base import Benchmark
from dgm.executors.mailbox import Mailbox
from dgm.gateway import Gateway, GatewaySettings, Spend
from dgm.sandbox_pool import SandboxPool
from dgm.unit_work import Place, Result, Work, perform
from sandbox.base import Backend
from sandbox.factory import open_sandbox


class LocalExecutor:
    def __init__(
        self,
        run_id: str,
        benchmark: Benchmark,
        backend: Backend,
        settings: GatewaySettings,
        archive: Archive,
        spent: Spend,
    ):
        self.gateway = Gateway(settings, archive, run_id=run_id, spent=spent)
        self._benchmark = benchmark
        self._sandboxes = SandboxPool(
            lambda box, unit: open_sandbox(backend, box, run_id=run_id, unit_id=unit)
        )
        self._host = socket.gethostname()
        self._placed: Mailbox[tuple[str, str]] = Mailbox()

    def __enter__(self) -> LocalExecutor:
        self.gateway.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.gateway.close()

    def perform(self, work: Work) -> Result:
        self._placed.put((work.unit, self._host))
        place = Place(
            self.gateway, self._sandboxes.opener(work.unit), self._benchmark,
            abandoned=lambda: self._sandboxes.abandoned,
        )  # fmt: skip
        return perform(work, place)

    def abandon(self) -> None:
        self._sandboxes.abandon()

    @property
    def abandoned(self) -> bool:
        return self._sandboxes.abandoned

    def placements(self) -> list[tuple[str, str]]:
        return self._placed.take()
