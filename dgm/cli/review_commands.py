"""`dgm review` (check, list, show, approve, reject) and `dgm audit` (log, verify): the
safety review of self-modifications, a person's decisions, and the log that proves them."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from archive.records import NodeStatus, interval_text
from dgm.cli.common import (
    DEFAULT_ARCHIVE,
    ArchiveOption,
    JsonOption,
    console,
    open_archive,
    print_json,
    short,
    shown,
    warnings,
)

app = typer.Typer(
    help="Safety reviews of self-modifications and a person's decisions.", no_args_is_help=True
)
audit_app = typer.Typer(
    help="The audit log of reviews, decisions, gates and exports.", no_args_is_help=True
)

MODEL_VARIABLE = "DGM_REVIEW_MODEL"
NodeArgument = Annotated[str, typer.Argument(help="Node id (or a unique prefix).")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why: kept in the audit log.")]
AsOption = Annotated[str | None, typer.Option("--as", help="Who decides (default: $DGM_REVIEWER).")]


@app.command()
def check(
    node: NodeArgument,
    model: Annotated[
        str | None,
        typer.Option(
            help=f"Model of the FM reviewer (default: ${MODEL_VARIABLE}; none: the "
            "static reviewer only)."
        ),
    ] = None,
    archive: ArchiveOption = DEFAULT_ARCHIVE,
    as_json: JsonOption = False,
) -> None:
    """Review a node's change to its parent now and keep the result."""
    from dgm.review import service

    model = model or os.environ.get(MODEL_VARIABLE) or None
    with open_archive(archive) as arc:
        node_id = arc.resolve(node)
        target = arc.node(node_id)
        if target.parent_id is None:
            from archive.errors import InvalidArgument

            raise InvalidArgument(f"{short(node_id)} is a root: there is no parent to compare with")
        policy = service.policy_of(arc, target)
        if model is None:
            if not as_json:
                warnings.print(
                    f"static review only: no review model (give --model or {MODEL_VARIABLE})"
                )
            review = service.review_node(arc, node_id, service.reviewers(policy))
        else:
            review = service.review_with_model(arc, node_id, policy, model)
        state = service.gate_state(arc, target, policy)
    if as_json:
        print_json(_review_json(review, state))
        return
    _print_review(review, state)


@app.command("list")
def list_(
    all_: Annotated[
        bool, typer.Option("--all", help="Every reviewed node, not only those waiting.")
    ] = False,
    archive: ArchiveOption = DEFAULT_ARCHIVE,
    as_json: JsonOption = False,
) -> None:
    """Nodes waiting for a person (with --all: every reviewed node), oldest first."""
    from dgm.review import service

    with open_archive(archive) as arc:
        chosen = [
            n for n in arc.nodes()
            if n.parent_id is not None and (all_ or n.status is NodeStatus.AWAITING_APPROVAL)
        ]  # fmt: skip
        states = service.gate_states(arc, chosen)
    rows = [s for s in states if not (all_ and s.review is None)]
    if as_json:
        print_json([_row_json(s) for s in rows])
        return
    if not rows:
        console.print("nothing waits for a person" if not all_ else "no node has been reviewed")
        return
    table = Table("node", "status", "risk", "findings", "admit", "promote", "export", "summary")
    for s in rows:
        findings = len(s.review.findings or []) if s.review else 0
        table.add_row(
            short(s.node.id),
            s.node.status.value,
            _risk(s),
            str(findings),
            *(s.verdicts[g].state for g in ("admit", "promote", "export")),
            escape(shown(s.node.summary)),
        )
    console.print(table)


@app.command()
def show(node: NodeArgument, archive: ArchiveOption = DEFAULT_ARCHIVE, as_json: JsonOption = False):
    """A node's review: the diff, the findings, the diagnosis that led to it, its scores and
    every decision."""
    from dgm.review import service

    with open_archive(archive) as arc:
        node_id = arc.resolve(node)
        n = arc.node(node_id)
        state = service.gate_state(arc, n)
        diff = arc.git.diff(arc.node(n.parent_id).commit, n.commit) if n.parent_id else ""
        scores = arc.scores(node_id)
    diagnosis = n.meta.get("diagnosis")
    if as_json:
        print_json(
            {
                **_row_json(state),
                "diff": diff,
                "diagnosis": diagnosis,
                "problem_statement": n.meta.get("problem_statement"),
                "scores": scores,
                "reviews": state.reviews,
            }
        )
        return
    console.print(
        f"[bold]node[/] {n.id}  parent {short(n.parent_id)}  status {n.status.value}  tree {n.tree}"
    )
    console.print(f"[bold]change[/] {escape(shown(n.summary or '(no description)'))}")
    if diagnosis:
        proposal = diagnosis.get("improvement_proposal") or diagnosis
        console.print(f"[bold]diagnosis[/] {escape(shown(str(proposal)[:600]))}")
    console.print(
        f"[bold]score[/] searched {_score(scores.searched)}  held-out {_score(scores.held_out)}"
    )
    for gate, v in state.verdicts.items():
        console.print(f"[bold]{gate}[/] {v.state}: {escape(v.reason)}")
    for r in state.reviews:
        who = f"{r.reviewer} ({r.kind})"
        console.print(
            f"[bold]review[/] {r.created_at:%Y-%m-%d %H:%M} {escape(who)}: "
            f"{r.decision} - {escape(r.reason)}"
        )
    if state.review:
        for f in service.findings_of(state.review):
            console.print(
                f"{_finding(f)} ({f.reviewer}) {escape(shown(f.note))}\n"
                f"      {escape(shown(f.excerpt))}"
            )
    if diff:
        console.print(Syntax(shown(diff), "diff", word_wrap=True))


@app.command()
def approve(
    node: NodeArgument,
    reason: ReasonOption,
    as_: AsOption = None,
    archive: ArchiveOption = DEFAULT_ARCHIVE,
    as_json: JsonOption = False,
) -> None:
    """Approve a node's code: every gate that waits for a person lets it through."""
    _decide(node, True, reason, as_, archive, as_json)


@app.command()
def reject(
    node: NodeArgument,
    reason: ReasonOption,
    as_: AsOption = None,
    archive: ArchiveOption = DEFAULT_ARCHIVE,
    as_json: JsonOption = False,
) -> None:
    """Reject a node's code: it is never selected, promoted, exported or counted again."""
    _decide(node, False, reason, as_, archive, as_json)


def _decide(node, approve_, reason, who, archive, as_json) -> None:
    from dgm.review import service

    name = service.reviewer_name(who)
    with open_archive(archive) as arc:
        node_id = arc.resolve(node)
        decision = service.decide(arc, node_id, approve=approve_, who=name, reason=reason)
    if as_json:
        print_json(decision)
        return
    verb = "approved" if approve_ else "rejected"
    console.print(f"{short(node_id)} {verb} by {escape(name)} (tree {decision.tree[:12]})")


@audit_app.command("log")
def audit_log(archive: ArchiveOption = DEFAULT_ARCHIVE, as_json: JsonOption = False) -> None:
    """Every review, decision, gate passage and export, oldest first."""
    with open_archive(archive) as arc:
        entries = arc.audit_entries()
    if as_json:
        print_json(entries)
        return
    table = Table("#", "at", "kind", "node", "actor", "what", "hash")
    for e in entries:
        what = ", ".join(f"{k}={v}" for k, v in e.payload.items() if k != "findings")
        table.add_row(
            str(e.seq),
            e.at[:19],
            e.kind,
            short(e.node_id),
            escape(e.actor),
            escape(what[:120]),
            e.hash[:12],
        )
    console.print(table)


@audit_app.command("verify")
def audit_verify(archive: ArchiveOption = DEFAULT_ARCHIVE, as_json: JsonOption = False) -> None:
    """Check the audit log's hash chain against its head; exit 1 naming the first bad entry."""
    with open_archive(archive) as arc:
        report = arc.verify_audit()
    if as_json:
        print_json(report)
    elif report.ok:
        console.print(f"audit log intact: {report.entries} entries")
    else:
        console.print(f"[red]audit log damaged[/]: {report.problem}")
    if not report.ok:
        sys.exit(1)


def _risk(state) -> str:
    return state.review.risk if state.review and state.review.risk else "unreviewed"


def _finding(f) -> str:
    """A finding's level (coloured), rule and place."""
    colour = {"low": "green", "medium": "yellow", "high": "red", "critical": "bold red"}[f.level]
    return f"  [{colour}]{f.level}[/] {f.rule} {escape(shown(f.file))}:{f.line}"


def _score(score) -> str:
    if not score.attempted:
        return "-"
    return f"{score.resolved}/{score.attempted} ({interval_text(score)})"


def _row_json(state) -> dict:
    n = state.node
    return {
        "node": n.id,
        "parent": n.parent_id,
        "status": n.status,
        "tree": n.tree,
        "risk": state.review.risk if state.review else None,
        "findings": state.review.findings if state.review else [],
        "gates": state.verdicts_json(),
        "decision": state.decision,
        "summary": n.summary,
    }


def _review_json(review, state) -> dict:
    return {**_row_json(state), "review": review}


def _print_review(review, state) -> None:
    from dgm.review import service

    console.print(f"{short(state.node.id)}: {escape(review.reason)} ({review.reviewer})")
    for f in service.findings_of(review):
        console.print(f"{_finding(f)} {escape(shown(f.note))}")
    for gate, v in state.verdicts.items():
        console.print(f"{gate}: {v.state} ({escape(v.reason)})")
