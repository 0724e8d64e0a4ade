"""Who may call the FM, how much each unit and the run have spent, and the record of each call.

A unit of work (one expansion, one evaluation) gets a token that is not a key; a gateway's
`Ledger` maps it to the unit and its budget. Before a call goes upstream its worst case is
reserved against the unit's and the run's budget, counting what is spent and what calls in
flight hold, so concurrent calls cannot together go over; when it ends the reservation is
released and what it used is charged. The run's part (`RunAccount`) is one per run: in this
process (`RunLedger`), or, on a cluster, one that every machine's gateway asks. Spend is kept
in memory, so this costs nothing; the calls themselves go to the archive from one writer
thread, so an FM call never waits for a database commit.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, Field

from archive.errors import is_disk_full
from archive.records import FMCall

log = logging.getLogger(__name__)
LARGEST_CALL_TOKENS = 2_000_000  # beyond every model's context window and output together


class Budget(BaseModel):
    """Spending limits; None means no limit."""

    usd: float | None = Field(None, ge=0)
    tokens: int | None = Field(None, ge=0)


@dataclass(frozen=True)
class Spend:
    tokens: int = 0
    usd: float = 0.0

    def __add__(self, other: Spend) -> Spend:
        return Spend(self.tokens + other.tokens, self.usd + other.usd)

    def __sub__(self, other: Spend) -> Spend:
        return Spend(self.tokens - other.tokens, self.usd - other.usd)


def _shortfall(
    budget: Budget, spent: Spend, held: Spend, call: Spend, whose: str
) -> tuple[str, str] | None:
    """The budget ("usd" or "tokens") that cannot cover `call` beside `spent` and `held`, and
    why; None when it fits."""
    for name, limit, used, busy, need, show in (
        ("usd", budget.usd, spent.usd, held.usd, call.usd, "${:.4f}".format),
        ("tokens", budget.tokens, spent.tokens, held.tokens, call.tokens, "{:,} tokens".format),
    ):
        if limit is None or used + busy + need <= limit:
            continue
        if used >= limit:
            return name, f"{whose} budget of {show(limit)} is spent ({show(used)} used)"
        return name, (
            f"{whose} budget of {show(limit)} cannot cover this call, which may use up to "
            f"{show(need)}: {show(used)} used, {show(busy)} held by calls in flight"
        )
    return None


@dataclass
class Account:
    unit_id: str
    node_id: str | None
    budget: Budget
    spent: Spend = Spend()
    held: Spend = Spend()  # the reservations of the unit's calls in flight


class UsageSink(Protocol):
    """Where metered calls are kept: the archive."""

    def record_fm_call(self, call: FMCall) -> None: ...


class RunAccount(Protocol):
    """The run's side of the ledger: one per run, however many gateways (one per machine of a
    cluster) ask it."""

    run_id: str | None

    def reserve(self, call: Spend) -> str | None: ...

    def settle(self, call: FMCall, held: Spend) -> None: ...

    def short_of(self) -> str | None: ...

    def flush(self) -> None: ...


class RunLedger:
    """The run's budget, spend and calls in flight, in this process; each settled call goes
    to the sink (the archive) from one writer thread."""

    def __init__(
        self,
        sink: UsageSink,
        *,
        run_id: str | None = None,
        budget: Budget | None = None,
        spent: Spend | None = None,
    ):
        self.run_id = run_id
        self.budget = budget or Budget()
        self.spent = spent or Spend()  # what earlier sessions of the run already spent
        self.held = Spend()
        self._refused: Spend | None = None  # the worst case of the last call the run refused
        self._sink = sink
        self._lock = threading.Lock()
        self._queue: queue.Queue[FMCall | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write, name="dgm-fm-meter", daemon=True)
        self._writer.start()

    def reserve(self, call: Spend) -> str | None:
        """Hold a call's worst case against the run's budget; why it does not fit, or None."""
        with self._lock:
            if short := _shortfall(self.budget, self.spent, self.held, call, "the run's"):
                # a call past any model's context is no honest call: it must not end the run
                scale = min(1.0, LARGEST_CALL_TOKENS / max(call.tokens, 1))
                self._refused = Spend(min(call.tokens, LARGEST_CALL_TOKENS), call.usd * scale)
                return short[1]
            self.held += call
            return None

    def short_of(self) -> str | None:
        """The run's budget ("usd" or "tokens") whose unspent part cannot cover the last call
        it refused (not merely for what calls in flight held): for the run, that budget is
        spent, though a little of it may be left. None otherwise."""
        with self._lock:
            refused = self._refused
            short = refused and _shortfall(self.budget, self.spent, Spend(), refused, "")
        return short[0] if short else None

    def settle(self, call: FMCall, held: Spend) -> None:
        """Release a call's reservation, charge what it used, and queue it for the archive
        (the same figures: the archive's spend is the ledger's)."""
        with self._lock:
            self.held -= held
            self.spent += Spend(call.input_tokens + call.output_tokens, call.cost_usd)
        self._queue.put(call)

    def flush(self) -> None:
        """Wait until every recorded call is in the archive, then stop the writer."""
        self._queue.put(None)
        self._writer.join()

    def _write(self) -> None:
        unwritten: list[FMCall] = []  # kept to try again: their spend must not be lost
        while (call := self._queue.get()) is not None:
            unwritten = record_calls(self._sink, [*unwritten, call])
        lost(record_calls(self._sink, unwritten))


def record_calls(sink: UsageSink, calls: list[FMCall]) -> list[FMCall]:
    """Record calls in order; returns those left when the disk filled up."""
    for i, call in enumerate(calls):
        try:
            sink.record_fm_call(call)
        except Exception as error:  # a metering failure must not take the gateway down
            if is_disk_full(error):
                return calls[i:]
            log.exception("could not record an FM call in the archive: %s", call)
    return []


def lost(calls: list[FMCall]) -> None:
    """Say that these calls could not be recorded (their spend is missing from the archive)."""
    if calls:
        tokens = sum(c.input_tokens + c.output_tokens for c in calls)
        usd = sum(c.cost_usd for c in calls)
        log.error(
            "%d FM calls (%d tokens, $%.4f) could not be recorded in the archive",
            len(calls), tokens, usd,
        )  # fmt: skip


class Ledger:
    """One gateway's units (their tokens, budgets and spend) over the run's account."""

    def __init__(self, run: RunAccount):
        self.run = run
        self.run_id = run.run_id
        self._accounts: dict[str, Account] = {}
        self._lock = threading.Lock()

    @property
    def spent(self) -> Spend:
        return self.run.spent  # type: ignore[attr-defined]

    @property
    def held(self) -> Spend:
        return self.run.held  # type: ignore[attr-defined]

    def open(
        self, unit_id: str, *, node_id: str | None = None, budget: Budget | None = None
    ) -> str:
        token = "dgm-unit-" + secrets.token_urlsafe(24)
        with self._lock:
            self._accounts[token] = Account(unit_id, node_id, budget or Budget())
        return token

    def close(self, token: str) -> Spend:
        """Revoke a unit's token; returns what the unit spent."""
        with self._lock:
            account = self._accounts.pop(token, None)
        return account.spent if account else Spend()

    def account(self, token: str | None) -> Account | None:
        return self._accounts.get(token) if token else None

    def reserve(self, account: Account, call: Spend) -> str | None:
        """Hold a call's worst case against the unit's and the run's budget; why it does not
        fit (nothing is held then), or None."""
        with self._lock:
            unit = (account.budget, account.spent, account.held)
            if short := _shortfall(*unit, call, "this unit's"):
                return short[1]
            account.held += call
        if reason := self.run.reserve(call):
            with self._lock:
                account.held -= call
            return reason
        return None

    def short_of(self) -> str | None:
        return self.run.short_of()

    def settle(self, call: FMCall, account: Account | None, held: Spend = Spend()) -> None:
        """Release a call's reservation and charge what it used to its unit and the run."""
        if account is None:  # refused before anything was held: recorded, charged to no one
            self.run.settle(call, Spend())
            return
        with self._lock:
            account.held -= held
            account.spent += Spend(call.input_tokens + call.output_tokens, call.cost_usd)
        self.run.settle(call, held)

    def flush(self) -> None:
        self.run.flush()
