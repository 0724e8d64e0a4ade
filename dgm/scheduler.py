"""A pool of workers fed with units by a search (its `ask`): a worker that frees up gets the
next unit at once. Budgets are checked before each unit starts, so every unit asked for is
started; a stop (budget spent, Ctrl-C) starts nothing new and lets the units in flight
finish, unless it is told to abandon them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from dgm.search.units import Unit

log = logging.getLogger(__name__)


@dataclass
class Report:
    reason: str
    """Why the run stopped: a budget, a stop request, or `nothing left to do`."""
    units_done: int
    spans: list[tuple[float, float]]
    """(start, end) of every finished unit, in seconds from the run's start."""
    wall_s: float
    stopped_s: float
    """When the stop came (the end, when there was nothing left to do)."""
    workers: int
    abandoned: int = 0
    """Units left in flight by an abandoning stop."""

    def utilisation(self, until: float | None = None) -> float:
        """Worker time spent on units over workers x time, up to `until` (default: the end)."""
        until = self.wall_s if until is None else until
        busy = sum(max(0.0, min(end, until) - start) for start, end in self.spans)
        return busy / (until * self.workers) if until else 0.0


class Scheduler:
    def __init__(
        self,
        workers: int,
        ask: Callable[[], Unit | None],
        execute: Callable[[Unit], Any],
        *,
        finished: Callable[[Unit, Any], None] = lambda unit, result: None,
        failed: Callable[[Unit, BaseException], None] | None = None,
        spent: Callable[[], str | None] = lambda: None,
        started: Callable[[Unit], None] = lambda unit: None,
        tick: Callable[[], None] = lambda: None,
    ):
        """`ask` gives the next unit (None: none now); `execute` runs it in a worker thread;
        `finished` / `failed` take its outcome in the scheduler's thread (one at a time);
        `spent` names a spent budget, or None; `tick` is called in the scheduler's thread at
        least every half second, busy workers or not."""
        self.workers, self.ask, self.execute, self._tick = workers, ask, execute, tick
        self._finished, self._spent, self._started = finished, spent, started
        self._failed = failed or _log_failure
        self._stop: str | None = None
        self._abandon = threading.Event()
        self.in_flight: dict[Future, Unit] = {}

    def stop(self, reason: str, *, abandon: bool = False) -> None:
        """Start no new unit; with `abandon`, do not wait for those in flight either."""
        self._stop = self._stop or reason
        if abandon:
            self._abandon.set()

    def run(self) -> Report:
        start = time.monotonic()
        spans: list[tuple[float, float]] = []
        stopped: float | None = None
        # not a `with` block: abandoning must not wait for the threads still running
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="dgm-unit")
        try:
            while True:
                self._tick()
                while self._stop is None and len(self.in_flight) < self.workers:
                    if reason := self._spent():  # before each unit
                        self.stop(reason)
                        break
                    unit = self.ask()
                    if unit is None:
                        break
                    self._started(unit)
                    self.in_flight[pool.submit(self._timed, unit)] = unit
                if self._stop is not None and stopped is None:
                    stopped = time.monotonic() - start
                if not self.in_flight or self._abandon.is_set():
                    break
                finished, _ = wait(self.in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    unit = self.in_flight.pop(future)
                    try:
                        result, began, ended = future.result()
                    except Exception as error:  # a bug or a broken machine: the unit failed
                        self._failed(unit, error)
                    else:
                        spans.append((began - start, ended - start))
                        self._finished(unit, result)
        except BaseException:  # a callback could not go on: nobody will take these results
            self._abandon.set()
            raise
        finally:
            pool.shutdown(wait=not self._abandon.is_set(), cancel_futures=True)
        wall = time.monotonic() - start
        reason = self._stop or "nothing left to do"
        abandoned = len(self.in_flight) if self._abandon.is_set() else 0
        return Report(reason, len(spans), spans, wall, stopped or wall, self.workers, abandoned)

    def _timed(self, unit: Unit) -> tuple[Any, float, float]:
        began = time.monotonic()
        return self.execute(unit), began, time.monotonic()


def _log_failure(unit: Unit, error: BaseException) -> None:
    log.error("unit %s failed", unit, exc_info=error)
