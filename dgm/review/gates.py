"""The safety policy: per gate, what each risk level does.

Gates: `admit` (the node may be chosen as a parent and expanded), `promote` (it may go on to
later evaluation stages), `export` (it may leave the archive). Each risk level at each gate
`pass`es on its own, `wait`s for a person, or is `reject`ed. A person's decision (approve or
reject) is about one node's code: it answers every gate that waits, and only for the tree
it was made on. A root (the code a person started from) passes every gate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from archive.records import Node, Review
from dgm.review.change import DEFAULT_PROTECTED
from dgm.review.findings import Risk

Gate = Literal["admit", "promote", "export"]
GATES: tuple[Gate, ...] = ("admit", "promote", "export")
Action = Literal["pass", "wait", "reject"]


class GatePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    low: Action = "pass"
    medium: Action = "pass"
    high: Action = "wait"
    critical: Action = "wait"

    def action(self, risk: Risk) -> Action:
        return getattr(self, risk.value)


class ReviewPolicy(BaseModel):
    """`review:` in a run's config."""

    model_config = ConfigDict(extra="forbid")
    fm: bool = True
    """Ask the FM reviewer too (with `model`, else the run's diagnosis model)."""
    model: str | None = None
    protected: list[str] = Field(default_factory=lambda: list(DEFAULT_PROTECTED))
    medium_lines: int = Field(500, ge=1)
    high_lines: int = Field(2000, ge=1)
    admit: GatePolicy = GatePolicy()
    promote: GatePolicy = GatePolicy(high="pass", critical="pass")
    export: GatePolicy = GatePolicy()

    def gate(self, gate: Gate) -> GatePolicy:
        return getattr(self, gate)


@dataclass(frozen=True)
class Verdict:
    gate: Gate
    state: Literal["passed", "waiting", "rejected"]
    reason: str

    @property
    def passed(self) -> bool:
        return self.state == "passed"


def verdict(
    policy: ReviewPolicy, gate: Gate, node: Node, review: Review | None, decision: Review | None
) -> Verdict:
    """What `gate` says of `node`, given its latest automated review and person's decision
    (each counted only if made on the node's tree)."""
    if node.parent_id is None:
        return Verdict(gate, "passed", "a root: the code a person started from")
    if decision is not None and decision.tree == node.tree:
        if decision.decision == "approve":
            return Verdict(gate, "passed", f"approved by {decision.reviewer}: {decision.reason}")
        return Verdict(gate, "rejected", f"rejected by {decision.reviewer}: {decision.reason}")
    if review is None or review.tree != node.tree or review.risk is None:
        return Verdict(gate, "waiting", f"not reviewed: run `dgm review check {node.id[:8]}`")
    risk = Risk(review.risk)
    action = policy.gate(gate).action(risk)
    if action == "pass":
        return Verdict(gate, "passed", f"risk {risk} passes {gate} on its own")
    if action == "reject":
        return Verdict(gate, "rejected", f"risk {risk} is rejected at {gate} by the policy")
    return Verdict(gate, "waiting", f"risk {risk} waits for a person at {gate}")
