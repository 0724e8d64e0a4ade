"""Who may call the FM, how much each unit and the run have spent, and the record of each call.

A unit of work (one expansion, one evaluation) gets a token that is not a key; the ledger maps
it to the unit and its budget. Spend is kept in memory, so the check before each call costs
nothing; the calls themselves go to the archive from one writer thread, so an FM call never
waits for a database commit.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel, Field

from archive.errors import is_disk_full
from archive.records import FMCall

log = logging.getLogger(__name__)


class Budget(BaseModel):
    """Spending limits; None means no limit."""

    usd: float | None = Field(None, ge=0)
    tokens: int | None = Field(None, ge=0)


@dataclass
class Spend:
    tokens: int = 0
    usd: float = 0.0

    def over(self, budget: Budget, whose: str) -> str | None:
        """Why this spend leaves nothing of `budget`, or None while some is left."""
        if budget.usd is not None and self.usd >= budget.usd:
            return f"{whose} budget of ${budget.usd:.2f} is spent (${self.usd:.4f} used)"
        if budget.tokens is not None and self.tokens >= budget.tokens:
            return f"{whose} budget of {budget.tokens:,} tokens is spent ({self.tokens:,} used)"
        return None


@dataclass
class Account:
    unit_id: str
    node_id: str | None
    budget: Budget
    spent: Spend = field(default_factory=Spend)


class UsageSink(Protocol):
    """Where metered calls are kept: the archive."""

    def record_fm_call(self, call: FMCall) -> None: ...


class Ledger:
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
        self._sink = sink
        self._accounts: dict[str, Account] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[FMCall | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write, name="dgm-fm-meter", daemon=True)
        self._writer.start()

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

    def refusal(self, account: Account) -> str | None:
        with self._lock:
            return account.spent.over(account.budget, "this unit's") or self.spent.over(
                self.budget, "the run's"
            )

    def record(self, call: FMCall, account: Account | None) -> None:
        """Charge a finished call to its unit and the run, and queue it for the archive."""
        with self._lock:
            for spend in (account.spent, self.spent) if account else ():
                spend.tokens += call.input_tokens + call.output_tokens
                spend.usd += call.cost_usd
        self._queue.put(call)

    def flush(self) -> None:
        """Wait until every recorded call is in the archive, then stop the writer."""
        self._queue.put(None)
        self._writer.join()

    def _write(self) -> None:
        unwritten: list[FMCall] = []  # kept to try again: their spend must not be lost
        while (call := self._queue.get()) is not None:
            unwritten = self._record([*unwritten, call])
        if unwritten := self._record(unwritten):
            tokens = sum(c.input_tokens + c.output_tokens for c in unwritten)
            usd = sum(c.cost_usd for c in unwritten)
            log.error(
                "%d FM calls (%d tokens, $%.4f) could not be recorded in the archive",
                len(unwritten), tokens, usd,
            )  # fmt: skip

    def _record(self, calls: list[FMCall]) -> list[FMCall]:
        """Record calls in order; returns those left when the disk filled up."""
        for i, call in enumerate(calls):
            try:
                self._sink.record_fm_call(call)
            except Exception as error:  # a metering failure must not take the gateway down
                if is_disk_full(error):
                    return calls[i:]
                log.exception("could not record an FM call in the archive: %s", call)
        return []
