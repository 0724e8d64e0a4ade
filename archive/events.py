"""The kinds of event the archive logs and what each one's payload holds, declared here once
for whoever writes events (the archive, the engine, self-modification, the judge) and whoever
reads them (`dgm status`, a resumed run). The log is append-only: a payload is checked against
its kind before it is written."""

from enum import StrEnum
from typing import Any, NotRequired, TypedDict


class EventKind(StrEnum):
    RUN_STARTED = "run_started"
    RUN_RESUMED = "run_resumed"
    RUN_FINISHED = "run_finished"  # stopped (interrupted) or finished, with why
    NODE_ADDED = "node_added"
    STATUS_CHANGED = "status_changed"
    EVALUATIONS_RECORDED = "evaluations_recorded"
    SOLUTION_FLAGGED = "solution_flagged"  # a patch that tried to game the grader
    REVIEW_ADDED = "review_added"
    UNIT_STARTED = "unit_started"
    UNIT_PLACED = "unit_placed"  # the machine (node) a unit started on
    UNIT_FINISHED = "unit_finished"
    UNIT_FAILED = "unit_failed"  # the harness failed: the unit counts for nothing
    EXPANSION_FAILED = "expansion_failed"  # an expansion that made no child
    JUDGED = "judged"  # the interestingness judge's verdict on a child
    HELD_OUT = "held_out"  # the run's answer measured on tasks the search never saw
    SOLVED = "solved"  # `dgm solve`: an agent run on a repository and task of a person's own


class RunTasks(TypedDict):
    benchmark: str
    model: str
    searched: list[str]
    held_out: list[str]
    # the session's resolved config (kept in the run's row) and what its models cost
    config_hash: NotRequired[str]
    prices: NotRequired[dict[str, list[float] | None]]  # USD per million in, out; None: unknown


class RunStarted(TypedDict):
    name: str
    # what the engine searched on (absent for runs made by hand)
    benchmark: NotRequired[str]
    model: NotRequired[str]
    searched: NotRequired[list[str]]
    held_out: NotRequired[list[str]]
    config_hash: NotRequired[str]
    prices: NotRequired[dict[str, list[float] | None]]


class RunFinished(TypedDict):
    status: str  # "finished" or "stopped"
    reason: str | None


class NodeAdded(TypedDict):
    parent: str | None
    origin: str
    commit: str


class StatusChanged(TypedDict):
    status: str
    reason: str | None


class EvaluationsRecorded(TypedDict):
    count: int
    resolved: int
    benchmarks: list[str]


class SolutionFlagged(TypedDict):
    evaluation: int
    benchmark: str
    task: str
    findings: list[dict[str, Any]]  # rule, file, line, excerpt


class ReviewAdded(TypedDict):
    reviewer: str
    kind: str
    decision: str


class UnitStarted(TypedDict):
    unit: str


class UnitFinished(TypedDict):
    unit: str
    # an expansion: the child (None: none) and whether it passed its own tests
    child: NotRequired[str | None]
    usable: NotRequired[bool]
    # an evaluation: resolved (None: a harness error) and whether it left a patch
    result: NotRequired[bool | None]
    patched: NotRequired[bool]


class UnitFailed(TypedDict):
    unit: str
    error: str


class UnitPlaced(TypedDict):
    unit: str
    machine: str  # the node of the cluster (or the host) it runs on


class ExpansionFailed(TypedDict):
    entry: str
    reason: str
    diagnosis: dict[str, str]
    problem_statement: str
    fm_cost_usd: NotRequired[float]  # not known of an attempt imported from another tool
    fm_tokens: NotRequired[int]
    patch_blob: NotRequired[str]
    trajectory_blob: NotRequired[str]
    imported: NotRequired[dict[str, str]]  # the tool (`from`) and its name for the attempt


class Judged(TypedDict):
    interesting: bool
    reason: str
    model: str


class HeldOut(TypedDict):
    resolved: int
    attempted: int


class Solved(TypedDict):
    repo: str
    head: str  # the commit the agent worked on
    task: str
    model: str
    stop: str  # how the agent's process ended
    steps: int  # FM calls metered
    tokens: int
    cost_usd: float
    duration_s: float
    patch_blob: str
    trajectory_blob: str
    applied: bool


PAYLOADS: dict[EventKind, type] = {
    EventKind.RUN_STARTED: RunStarted,
    EventKind.RUN_RESUMED: RunTasks,
    EventKind.RUN_FINISHED: RunFinished,
    EventKind.NODE_ADDED: NodeAdded,
    EventKind.STATUS_CHANGED: StatusChanged,
    EventKind.EVALUATIONS_RECORDED: EvaluationsRecorded,
    EventKind.SOLUTION_FLAGGED: SolutionFlagged,
    EventKind.REVIEW_ADDED: ReviewAdded,
    EventKind.UNIT_STARTED: UnitStarted,
    EventKind.UNIT_PLACED: UnitPlaced,
    EventKind.UNIT_FINISHED: UnitFinished,
    EventKind.UNIT_FAILED: UnitFailed,
    EventKind.EXPANSION_FAILED: ExpansionFailed,
    EventKind.JUDGED: Judged,
    EventKind.HELD_OUT: HeldOut,
    EventKind.SOLVED: Solved,
}


def checked(kind: EventKind | str, payload: dict[str, Any]) -> tuple[EventKind, dict[str, Any]]:
    """The kind and payload, once the payload has the keys its kind declares; ValueError
    naming the first that is missing or unknown."""
    kind = EventKind(kind)
    declared = PAYLOADS[kind]
    if missing := sorted(declared.__required_keys__ - payload.keys()):
        raise ValueError(f"a {kind} event needs {missing[0]!r}")
    if unknown := sorted(payload.keys() - declared.__annotations__.keys()):
        raise ValueError(f"a {kind} event has no field {unknown[0]!r}")
    return kind, payload
