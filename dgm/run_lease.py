"""One scheduler per run: a lease row in the archive, renewed by a heartbeat.

A second `dgm run` of a held run is refused, naming the host and process that hold it. A
holder whose heartbeat has been silent for longer than the lease, or whose process is gone
from this very host, is dead: its lease is taken over (one claimant wins), so a run continues
from any machine after its scheduler died, and at once on the machine where it crashed. A
holder that finds its lease taken stops at once: another scheduler owns the run now.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from archive import Archive
from archive.errors import RunHeld
from archive.records import RunLease

log = logging.getLogger(__name__)


class Lease:
    def __init__(
        self, archive: Archive, run_id: str, run_name: str, *, lease_s: float,
        on_lost: Callable[[], None],
    ):  # fmt: skip
        self.archive, self.run_id, self.run_name = archive, run_id, run_name
        self.lease_s, self.on_lost = lease_s, on_lost
        self.holder = uuid.uuid4().hex
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self) -> None:
        """Hold the run, or RunHeld naming who does."""
        for _ in range(3):  # another claimant may win between the read and the claim
            current = self.archive.lease(self.run_id)
            if current is not None and not self.dead(current):
                raise RunHeld(
                    f"run {self.run_name!r} is running on {current.host} (pid {current.pid}, "
                    f"heard from {current.silent_s:.0f} s ago); stop it there, or run this "
                    f"again once it has been silent for {self.lease_s:.0f} s"
                )
            replacing = current.holder if current else None
            if self.archive.claim_lease(
                self.run_id, self.holder, self.host, self.pid, replacing=replacing
            ):
                self._thread = threading.Thread(target=self._beat, name="dgm-lease", daemon=True)
                self._thread.start()
                return
        raise RunHeld(f"run {self.run_name!r} was just taken by another scheduler")

    def dead(self, lease: RunLease) -> bool:
        if lease.silent_s > self.lease_s:
            return True
        return lease.host == self.host and not _alive(lease.pid)

    def release(self) -> None:
        """Stop the heartbeat and free the run. Never raises: the run may be ending on an
        error (a full disk) that must be the one reported; a lease left behind is taken
        over once its process is gone."""
        self._stop.set()
        if self._thread is None:
            return
        self._thread.join()
        try:
            self.archive.drop_lease(self.run_id, self.holder)
        except Exception as error:
            log.warning("run %s: its lease was left to expire (%s)", self.run_name, error)

    def _beat(self) -> None:
        """Renew the lease every sixth of its length; give the run up when it is no longer
        ours, or when the archive could not be reached for a whole lease."""
        last = time.monotonic()
        while not self._stop.wait(self.lease_s / 6):
            try:
                if not self.archive.renew_lease(self.run_id, self.holder):
                    log.error("run %s: another scheduler took the lease", self.run_name)
                    self.on_lost()
                    return
                last = time.monotonic()
            except Exception as error:  # the database away for a moment: try again next beat
                log.warning("run %s: lease not renewed (%s)", self.run_name, error)
                if time.monotonic() - last > self.lease_s:
                    self.on_lost()
                    return


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:  # a killed process its parent has not reaped yet is a zombie: dead all the same
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
