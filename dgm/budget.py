"""A run's budgets: what each allows (the config's `budget`) and what is spent, counted one way
for the engine, which stops when one is spent, and for `dgm status`, which reads a live or
dead run from its archive."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:  # the config reads Budget: no numpy for every command's start
    from archive import Archive, Run
    from dgm.search import Population, Unit


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    usd: float | None = Field(None, ge=0)
    tokens: int | None = Field(None, ge=0)
    evaluations: int | None = Field(None, ge=0)
    """Task evaluations on the searched tasks (those in flight included)."""
    expansions: int | None = Field(None, ge=0)
    """Expansions started, those that made no child included. When they are spent, the
    evaluations the children owe still run."""
    wall_clock: timedelta | None = None
    """A duration such as `36h`, `90m`, `2d` or `1h30m`, from the run's first start."""

    @field_validator("wall_clock", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        # ISO 8601 (`PT36H`) is how a run's stored config keeps it
        if isinstance(value, str) and not value.startswith("P"):
            return parse_duration(value)
        return value


@dataclass(frozen=True)
class Line:
    limit: float | None
    spent: float

    @property
    def share(self) -> float | None:
        """The share of the limit spent (1.0 and over: all of it); None without a limit."""
        if self.limit is None:
            return None
        return self.spent / self.limit if self.limit else 1.0


def lines(
    limits: Budget,
    archive: Archive,
    run: Run,
    population: Population,
    in_flight: Iterable[Unit] = (),
) -> dict[str, Line]:
    """Each budget: its limit (wall clock in seconds) and what the run has spent of it, the
    units in flight counted."""
    units = list(in_flight)
    tokens, usd = archive.fm_spend(run.id)
    ended = run.finished_at if run.status != "running" and run.finished_at else _now()
    spent = {
        "usd": usd,
        "tokens": tokens,
        "evaluations": population.evaluations + sum(u.kind == "evaluate" for u in units),
        "expansions": sum(population.expansions.values()) + sum(u.kind == "expand" for u in units),
        "wall_clock": (ended - run.started_at).total_seconds(),
    }
    wall = limits.wall_clock.total_seconds() if limits.wall_clock is not None else None
    allowed = limits.model_dump(exclude={"wall_clock"}) | {"wall_clock": wall}
    return {name: Line(allowed[name], value) for name, value in spent.items()}


def spent(budget: dict[str, Line]) -> str | None:
    """Why the run must stop (`budget usd spent`), or None. Spent expansions stop no run: no
    more start, and the evaluations their children owe go on."""
    for name, line in budget.items():
        if name != "expansions" and line.share is not None and line.share >= 1:
            return f"budget {name} spent"
    return None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    parts = _DURATION.findall(text.replace(" ", ""))
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        raise ValueError(f"{text!r} is not a duration such as 36h, 90m, 2d or 1h30m")
    return sum((timedelta(**{_UNITS[unit]: float(n)}) for n, unit in parts), timedelta())


def _now() -> datetime:
    return datetime.now(UTC)
