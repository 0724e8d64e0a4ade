"""Reviews and decisions as the archive keeps them, for the engine, `dgm review`, `dgm
export` and the web UI alike: run the reviewers on a node and store the result; what each
gate says of a node; a person's decision."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from archive import Archive
from archive.errors import InvalidArgument
from archive.records import Node, NodeStatus, Review
from dgm.review.change import change_of
from dgm.review.findings import Finding, Result, Reviewer, Risk, highest
from dgm.review.gates import GATES, Gate, ReviewPolicy, Verdict, verdict
from dgm.review.static import StaticReviewer

if TYPE_CHECKING:
    from dgm.gateway import Gateway

REVIEWER_VARIABLE = "DGM_REVIEWER"
HELD_GATES = frozenset({"admit", "promote"})
"""The gates a run holds a node at; `export` is asked when it leaves the archive."""


def reviewers(
    policy: ReviewPolicy, gateway: Gateway | None = None, model: str | None = None
) -> list[Reviewer]:
    """The static reviewer as the policy sets it, then the FM reviewer when a model is given."""
    chosen: list[Reviewer] = [
        StaticReviewer(tuple(policy.protected), policy.medium_lines, policy.high_lines)
    ]
    if gateway is not None and model is not None:
        from dgm.review.fm_reviewer import FMReviewer  # the gateway's imports: only when asked

        chosen.append(FMReviewer(gateway, model))
    return chosen


def review_with_model(archive: Archive, node_id: str, policy: ReviewPolicy, model: str) -> Review:
    """`review_node` with the static and FM reviewers, the FM reached through a gateway of
    its own on the environment's upstreams (the embedded model when it names none)."""
    from dgm.fm.providers import open_providers
    from dgm.gateway import Gateway, GatewaySettings

    with open_providers() as providers:
        settings = GatewaySettings(
            openai=providers.openai, anthropic=providers.anthropic, models=[model]
        )
        with Gateway(settings, archive) as gateway:
            return review_node(archive, node_id, reviewers(policy, gateway, model))


def review_node(
    archive: Archive, node_id: str, reviewers: list[Reviewer], *, run_id: str | None = None
) -> Review:
    """Run the reviewers in order on the node's change to its parent; store and return the
    review (risk: the highest level any of them found)."""
    change = change_of(archive, node_id)
    findings: list[Finding] = []
    details = {}
    for reviewer in reviewers:
        found, report = reviewer.review(change, list(findings))
        findings += found
        details[reviewer.name] = report
    result = Result(
        highest(f.level for f in findings), findings, [r.name for r in reviewers], details
    )
    return archive.add_review(
        node_id,
        reviewer="+".join(result.reviewers),
        kind="automated",
        decision="reviewed",
        reason=summary(result),
        run_id=run_id,
        tree=change.tree,
        risk=result.risk.value,
        findings=[f.as_dict() for f in findings],
        details=details,
        actor="dgm",
    )


def summary(result: Result) -> str:
    if not result.findings:
        return f"risk {result.risk}: nothing found"
    worst = [f for f in result.findings if f.level is result.risk]
    rules = sorted({f.rule for f in worst})
    return f"risk {result.risk}: {len(result.findings)} findings; the worst: {', '.join(rules)}"


def findings_of(review: Review) -> list[Finding]:
    return [Finding.from_dict(f) for f in review.findings or []]


@dataclass(frozen=True)
class GateState:
    node: Node
    review: Review | None
    """The latest automated review."""
    decision: Review | None
    """The latest person's decision."""
    verdicts: dict[Gate, Verdict]
    reviews: list[Review]
    """Every review and decision of the node, oldest first."""

    @property
    def risk(self) -> Risk | None:
        return Risk(self.review.risk) if self.review and self.review.risk else None

    @property
    def reviewed(self) -> bool:
        """The node's own code has an automated review: a person may decide on it."""
        return self.review is not None and self.review.tree == self.node.tree

    def waits(self) -> frozenset[str]:
        return frozenset(g for g, v in self.verdicts.items() if v.state == "waiting")

    def verdicts_json(self) -> dict[str, dict[str, str]]:
        """What each gate says, as provenance, `dgm review` and the web UI show it."""
        return {g: {"state": v.state, "reason": v.reason} for g, v in self.verdicts.items()}


def policy_of(archive: Archive, node: Node) -> ReviewPolicy:
    """The safety policy of the node's run (the default one for a node added by hand)."""
    if node.run_id is None:
        return ReviewPolicy()
    config = archive.run(node.run_id).config
    return ReviewPolicy.model_validate(config.get("review") or {})


def gate_state(archive: Archive, node: Node, policy: ReviewPolicy | None = None) -> GateState:
    policy = policy or policy_of(archive, node)
    reviews = archive.reviews(node.id)
    review = next((r for r in reversed(reviews) if r.kind == "automated"), None)
    decision = next((r for r in reversed(reviews) if r.kind == "human"), None)
    verdicts = {g: verdict(policy, g, node, review, decision) for g in GATES}
    return GateState(node, review, decision, verdicts, reviews)


def gate_states(
    archive: Archive, nodes: Iterable[Node], policy: ReviewPolicy | None = None
) -> list[GateState]:
    """Each node's gate state under `policy`, or else its run's own (each run's config
    read once)."""
    policies: dict[str | None, ReviewPolicy] = {}
    states = []
    for node in nodes:
        if policy is None and node.run_id not in policies:
            policies[node.run_id] = policy_of(archive, node)
        states.append(gate_state(archive, node, policy or policies[node.run_id]))
    return states


def undecided_states(archive: Archive, run_id: str, policy: ReviewPolicy) -> dict[str, GateState]:
    """The gates' state of a run's children still in play (pending or waiting): what a run
    resumes with."""
    undecided = (NodeStatus.PENDING, NodeStatus.AWAITING_APPROVAL)
    nodes = [
        n for n in archive.nodes()
        if n.run_id == run_id and n.parent_id is not None and n.status in undecided
    ]  # fmt: skip
    return {state.node.id: state for state in gate_states(archive, nodes, policy)}


def export_passed(
    archive: Archive,
    node_id: str,
    out: Path,
    *,
    actor: str,
    chosen: dict | None = None,
    where: str | None = None,
) -> Path:
    """Export a node that passed the `export` gate (else InvalidArgument naming what is
    missing), its gates in the provenance, and the export in the audit log (`where` it went:
    by default the folder)."""
    from archive.export import export_node

    state = gate_state(archive, archive.node(node_id))
    export = state.verdicts["export"]
    if not export.passed:
        hint = ""
        if export.state == "waiting" and state.review is not None:
            hint = f"; a person may approve it: `dgm review approve {node_id[:8]} --reason ...`"
        raise InvalidArgument(
            f"{node_id[:8]} has not passed the export gate: {export.reason}{hint}"
        )
    gates = state.verdicts_json()
    export_node(archive, node_id, out, chosen=chosen, gates=gates)
    payload = {"tree": state.node.tree, "out": where or str(out.resolve()), "gate": export.reason}
    archive.record_audit("export", payload, actor=actor, node_id=node_id)
    return out


def reviewer_name(given: str | None) -> str:
    name = (given or os.environ.get(REVIEWER_VARIABLE) or "").strip()
    if not name:
        raise InvalidArgument(f"say who decides: --as NAME or {REVIEWER_VARIABLE}=NAME")
    return name


def decide(archive: Archive, node_id: str, *, approve: bool, who: str, reason: str) -> Review:
    """A person's decision on a node's code: it answers every gate that waits for one. The
    node goes back to `pending` (its run takes it from there, at once if it is running) or
    is `rejected`."""
    node = archive.node(node_id)
    if node.parent_id is None:
        raise InvalidArgument(f"{node.id[:8]} is a root: it passes every gate without a decision")
    if not reason.strip():
        raise InvalidArgument("give the reason for the decision with --reason")
    state = gate_state(archive, node)
    if not state.reviewed:
        raise InvalidArgument(
            f"{node.id[:8]} has not been reviewed; run `dgm review check {node.id[:8]}` first"
        )
    if node.status is NodeStatus.REJECTED and approve:
        raise InvalidArgument(f"{node.id[:8]} is rejected; a decision cannot bring it back")
    review = archive.add_review(
        node.id,
        reviewer=who,
        kind="human",
        decision="approve" if approve else "reject",
        reason=reason.strip(),
        run_id=node.run_id,
        tree=node.tree,
        actor=who,
    )
    if not approve:
        archive.set_status(node.id, NodeStatus.REJECTED, f"rejected by {who}: {reason.strip()}")
    elif node.status is NodeStatus.AWAITING_APPROVAL:
        archive.set_status(node.id, NodeStatus.PENDING, f"approved by {who}")
    return review
