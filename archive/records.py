"""Plain records read from and written to the archive."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any, NamedTuple

Z95 = 1.959964  # the normal quantile of a two-sided 95% interval


def jsonable(value: Any) -> Any:
    """Records as JSON-ready values: datetimes in ISO 8601, enums by value, scores with `score`."""
    if isinstance(value, Score):
        interval = value.interval and [round(bound, 4) for bound in value.interval]
        return {
            "resolved": value.resolved, "attempted": value.attempted, "score": value.value,
            "interval": interval,
        }  # fmt: skip
    if isinstance(value, NodeScores):
        return {
            "overall": jsonable(value.overall),
            "searched": jsonable(value.searched),
            "held_out": jsonable(value.held_out),
            "by_benchmark": jsonable(value.by_benchmark),
            "by_stage": [
                {"benchmark": benchmark, "stage": stage, **jsonable(score)}
                for (benchmark, stage), score in sorted(value.by_stage.items())
            ],
        }
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {k: jsonable(v) for k, v in value._asdict().items()}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


class Origin(StrEnum):
    SEED = "seed"
    SELF_MODIFICATION = "self-modification"
    HUMAN = "human"


class NodeStatus(StrEnum):
    PENDING = "pending"  # committed, not yet reviewed
    AWAITING_APPROVAL = "awaiting-approval"  # the safety policy wants a person to look
    ADMITTED = "admitted"  # may be selected, promoted and exported
    REJECTED = "rejected"


class EvalStatus(StrEnum):
    RESOLVED = "resolved"
    UNRESOLVED = "unresolved"
    EMPTY = "empty"  # the agent produced no patch
    TIMEOUT = "timeout"  # the agent ran out of time: its failure
    ERROR = "error"  # the harness failed: says nothing of the agent, so not counted

    @property
    def counted(self) -> bool:
        return self is not EvalStatus.ERROR


class Score(NamedTuple):
    """Resolved out of attempted. A tuple, because selection builds one per node per step."""

    resolved: int = 0
    attempted: int = 0

    @property
    def value(self) -> float | None:
        return self.resolved / self.attempted if self.attempted else None

    def __add__(self, other: tuple) -> Score:  # type: ignore[override]
        return Score(self.resolved + other[0], self.attempted + other[1])

    @property
    def interval(self) -> tuple[float, float] | None:
        """The 95% interval of the pass rate (Wilson's): over 10 tasks a score is mostly
        noise, and people compare scores. None when nothing was attempted."""
        return wilson_interval(self.resolved, self.attempted)

    def __str__(self) -> str:
        if not self.attempted:
            return "-"
        return f"{self.value:.3f} ({self.resolved}/{self.attempted}; 95% {interval_text(self)})"


def wilson_interval(resolved: int, attempted: int) -> tuple[float, float] | None:
    """Wilson's score interval for `resolved` successes in `attempted` trials at 95%: unlike
    the normal approximation it stays inside [0, 1] and is not empty at 0/n or n/n."""
    if attempted <= 0:
        return None
    n, p, z2 = attempted, resolved / attempted, Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    low = 0.0 if resolved == 0 else max(0.0, centre - half)
    return low, 1.0 if resolved == attempted else min(1.0, centre + half)


def interval_text(score: tuple[int, int]) -> str:
    """A score's 95% interval as people read it (`0.30-0.95`), or `-`."""
    interval = wilson_interval(*score)
    return f"{interval[0]:.2f}-{interval[1]:.2f}" if interval else "-"


HELD_OUT_STAGE = "held-out"
"""The stage of results on a run's held-out tasks: the search never sees them, and they are
shown apart from the rest."""


@dataclass(frozen=True)
class NodeScores:
    """A node's score overall, per benchmark and per (benchmark, stage)."""

    by_stage: dict[tuple[str, str], Score] = field(default_factory=dict)

    @property
    def overall(self) -> Score:
        return sum(self.by_stage.values(), Score())

    @property
    def searched(self) -> Score:
        """Every result but those on held-out tasks."""
        kept = [score for (_, stage), score in self.by_stage.items() if stage != HELD_OUT_STAGE]
        return sum(kept, Score())

    @property
    def held_out(self) -> Score:
        held = [score for (_, stage), score in self.by_stage.items() if stage == HELD_OUT_STAGE]
        return sum(held, Score())

    @property
    def by_benchmark(self) -> dict[str, Score]:
        totals: dict[str, Score] = {}
        for (benchmark, _stage), score in self.by_stage.items():
            totals[benchmark] = totals.get(benchmark, Score()) + score
        return totals


@dataclass(frozen=True)
class Run:
    id: str
    name: str
    config: dict[str, Any]
    config_hash: str
    status: str
    stop_reason: str | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class RunLease:
    """Who holds a run: a scheduler process, its host, and how long since its heartbeat (by
    the database's clock)."""

    run_id: str
    holder: str
    host: str
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime
    silent_s: float = 0.0


@dataclass(frozen=True)
class Node:
    id: str
    parent_id: str | None
    run_id: str | None
    commit: str
    tree: str
    origin: Origin
    status: NodeStatus
    proposal: str
    meta: dict[str, Any]
    created_at: datetime

    @property
    def summary(self) -> str:
        return self.proposal.strip().split("\n", 1)[0] if self.proposal.strip() else ""


class NodeSummary(NamedTuple):
    """One row of the whole-archive view that parent selection and `dgm tree` read.

    A tuple, in creation order, because selection reads every node on every step.
    """

    id: str
    parent_id: str | None
    origin: Origin
    status: NodeStatus
    score: Score
    """Every result but those on held-out tasks."""
    children: int
    admitted_children: int
    held_out: Score


@dataclass(frozen=True)
class EvaluationResult:
    """What a benchmark reports for one task; the archive numbers the attempt."""

    benchmark: str
    task: str
    status: EvalStatus
    stage: str = "default"
    duration_s: float | None = None
    cost_usd: float | None = None
    model: str | None = None
    limits: str | None = None
    """The agent's limits the result was made under (a result is reused only under these)."""
    log: bytes | None = None
    patch: bytes | None = None
    trajectory: bytes | None = None
    findings: tuple[dict[str, Any], ...] = ()
    """What the grader's solution check flagged (rule, file, line, excerpt): recorded in a
    `solution_flagged` event with the evaluation, for the safety review."""


@dataclass(frozen=True)
class Evaluation:
    id: int
    node_id: str
    run_id: str | None
    benchmark: str
    stage: str
    task: str
    attempt: int
    status: EvalStatus
    resolved: bool
    duration_s: float | None
    cost_usd: float | None
    model: str | None
    limits: str | None
    log_blob: str | None
    patch_blob: str | None
    trajectory_blob: str | None
    created_at: datetime


@dataclass(frozen=True)
class Review:
    id: int
    node_id: str
    run_id: str | None
    reviewer: str
    kind: str  # "automated" (the reviewers) or "human" (a person's decision)
    decision: str  # "reviewed" (automated), "approve" or "reject"
    reason: str
    created_at: datetime
    tree: str | None = None
    """The code the review or decision is about: it counts for that tree only."""
    risk: str | None = None
    findings: list[dict[str, Any]] | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class FMCall:
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_s: float
    status: str = "ok"
    run_id: str | None = None
    node_id: str | None = None
    unit_id: str | None = None


@dataclass(frozen=True)
class Event:
    id: int
    run_id: str | None
    node_id: str | None
    kind: str
    payload: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class CheckReport:
    nodes: int
    problems: list[str]  # damage: a row that points at nothing or disagrees with git
    orphan_refs: list[str]  # node refs with no row: left by a crash between git and SQL

    @property
    def ok(self) -> bool:
        return not self.problems
