"""The sandboxes a run's units hold, so that abandoning the run (a second Ctrl-C, SIGTERM)
ends every one of them at once, and no unit records what its killed sandbox did as a result:
an abandoned unit leaves nothing behind and is run again when the run continues."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sandbox.base import ExecResult, Sandbox, SandboxError, SandboxSettings, Taken

T = TypeVar("T")


class Abandoned(SandboxError):
    """The run abandoned this unit: whatever its sandbox did since is not a result."""


class SandboxPool:
    def __init__(self, open_sandbox: Callable[[SandboxSettings, str], Sandbox]):
        """`open_sandbox(settings, unit)` opens one sandbox for a unit."""
        self._open = open_sandbox
        self._live: set[_Held] = set()
        self._lock = threading.Lock()
        self.abandoned = False

    def opener(self, unit: str) -> Callable[[SandboxSettings], Sandbox]:
        """What a unit calls for each sandbox it needs."""

        def new_sandbox(settings: SandboxSettings) -> Sandbox:
            self._check()
            held = _Held(self, self._open(settings, unit))
            with self._lock:
                self._live.add(held)
            if self.abandoned:  # abandoned while it was starting
                held.close()
                self._check()
            return held

        return new_sandbox

    def abandon(self) -> None:
        """Destroy every sandbox a unit holds; from now on their calls raise `Abandoned`."""
        self.abandoned = True
        with self._lock:
            live = list(self._live)
        for held in live:
            with contextlib.suppress(SandboxError):
                held.inner.close()

    def _check(self) -> None:
        if self.abandoned:
            raise Abandoned("the run abandoned this unit")

    def _release(self, held: _Held) -> None:
        with self._lock:
            self._live.discard(held)


class _Held:
    """A unit's sandbox, as the pool hands it out."""

    def __init__(self, pool: SandboxPool, inner: Sandbox):
        self.pool, self.inner = pool, inner

    def __enter__(self) -> _Held:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.pool._release(self)
        self.inner.close()

    def exec(self, command: list[str], **options) -> ExecResult:
        return self._call(self.inner.exec, command, **options)

    def copy_in(self, source: Path, target: str | None = None) -> None:
        self._call(self.inner.copy_in, source, target)

    def copy_out(self, source: str, target: Path) -> Taken:
        return self._call(self.inner.copy_out, source, target)

    def _call(self, method: Callable[..., T], *args, **options) -> T:
        self.pool._check()
        try:
            result = method(*args, **options)
        finally:  # it may have failed, or ended early, because the run abandoned it
            self.pool._check()
        return result
