"""Commands that browse and change the archive: init, tree, show, diff, lineage, export, ..."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from archive import Archive, Lineage, NodeSummary, Origin, jsonable
from archive.database import display_url
from archive.errors import InvalidArgument
from archive.events import EventKind
from archive.records import interval_text
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
    write_untrusted,
)

NodeArgument = Annotated[str, typer.Argument(help="Node id or a unique prefix of it.")]


def register(app: typer.Typer) -> None:
    commands = (init, tree, show, cat, diff, lineage, export, predictions, add_agent, fsck, gc)
    for command in commands:
        app.command(name=command.__name__.replace("_", "-"))(command)


def init(
    archive: ArchiveOption = DEFAULT_ARCHIVE,
    database: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL (e.g. postgresql://user@host/db); default SQLite."),
    ] = None,
) -> None:
    """Create an empty archive."""
    Archive.init(archive, database_url=database).close()
    where = display_url(database) if database else "SQLite"
    console.print(f"Created an empty archive in {archive} (database: {escape(where)})")


def tree(
    node: Annotated[
        str | None, typer.Argument(help="Show only this node's clade (id or prefix).")
    ] = None,
    depth: Annotated[
        int | None, typer.Option(help="Show this many levels below the top.", min=0)
    ] = None,
    archive: ArchiveOption = DEFAULT_ARCHIVE,
    as_json: JsonOption = False,
) -> None:
    """The archive as a tree: origin, status, score and child count of every node."""
    with open_archive(archive) as arc:
        top = arc.resolve(node) if node else None
        summaries = arc.summaries()
        commits = arc.commits() if as_json else {}
    lineage = Lineage((s.id, s.parent_id) for s in summaries)
    depths = lineage.depths()
    tops = [top] if top else lineage.roots()
    base = depths[top] if top else 0
    shown = {
        n for t in tops for n in lineage.clade(t) if depth is None or depths[n] - base <= depth
    }
    if as_json:
        print_json(
            [_summary_json(s, *commits[s.id], depths[s.id]) for s in summaries if s.id in shown]
        )
        return
    if not summaries:
        console.print(f"{archive} holds no agents yet; add one with `dgm add-agent PATH`")
        return
    by_id = {s.id: s for s in summaries}
    # Drawn by hand: rich's Tree takes seconds for the 10,000 nodes of a long run.
    out = Text(f"{archive} ({len(summaries)} nodes)\n", style="bold")
    stack = [(t, "", i == len(tops) - 1) for i, t in reversed(list(enumerate(tops)))]
    while stack:
        node_id, prefix, last = stack.pop()
        out.append(prefix + ("└── " if last else "├── "), style="dim")
        _append_label(out, by_id[node_id])
        kids = [c for c in lineage.children(node_id) if c in shown]
        inner = prefix + ("    " if last else "│   ")
        stack.extend((c, inner, i == len(kids) - 1) for i, c in reversed(list(enumerate(kids))))
    console.print(out, end="", soft_wrap=True)


def _summary_json(s: NodeSummary, commit: str, tree: str, depth: int) -> dict:
    return {
        "id": s.id,
        "parent": s.parent_id,
        "commit": commit,
        "tree": tree,
        "origin": s.origin.value,
        "status": s.status.value,
        "children": s.children,
        "admitted_children": s.admitted_children,
        "score": s.score.value,
        "resolved": s.score.resolved,
        "attempted": s.score.attempted,
        "interval": jsonable(s.score)["interval"],
        "held_out": jsonable(s.held_out),
        "depth": depth,
    }


def _append_label(out: Text, s: NodeSummary) -> None:
    out.append(short(s.id), style="bold cyan")
    out.append(f" {s.origin.value} ")
    out.append(s.status.value, style=_status_style(s.status.value))
    held = f"  held-out {s.held_out}" if s.held_out.attempted else ""
    out.append(f"  score {s.score}{held}  children {s.children}\n")


def _status_style(status: str) -> str:
    return {"admitted": "green", "rejected": "red"}.get(status, "yellow")


def show(
    node: NodeArgument,
    archive: ArchiveOption = DEFAULT_ARCHIVE,
    task: Annotated[
        str | None, typer.Option(help="With --trajectory: the task whose attempt to show.")
    ] = None,
    attempt: Annotated[
        int | None, typer.Option(help="Which attempt at the task (default: the latest).")
    ] = None,
    trajectory: Annotated[
        bool, typer.Option("--trajectory", help="The agent's conversation on --task.")
    ] = False,
    form: Annotated[
        str, typer.Option("--format", help="text, or mini-swe-agent (its .traj.json).")
    ] = "text",
    out: Annotated[
        Path | None, typer.Option(help="Write the mini-swe-agent trajectory to this file.")
    ] = None,
    solve: Annotated[
        int | None, typer.Option(help="What the agent did in this `dgm solve` (its number).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Everything the archive knows about one node; with --trajectory, what its agent did
    on one task (or with --solve, on your repository)."""
    if trajectory or task is not None or solve is not None:
        show_trajectory(node, archive, task, attempt, form, out, solve)
        return
    with open_archive(archive) as arc:
        node_id = arc.resolve(node)
        record = arc.node(node_id)
        lineage = arc.lineage()
        scores = arc.scores(node_id)
        evaluations = arc.evaluations(node_id)
        reviews = arc.reviews(node_id)
        solves = arc.node_events(node_id, EventKind.SOLVED)
    children = lineage.children(node_id)
    if as_json:
        print_json(
            {
                **jsonable(record),
                "depth": lineage.depth(node_id),
                "children": children,
                "scores": scores,
                "evaluations": evaluations,
                "reviews": reviews,
                "solves": [{"solve": e.id, **e.payload} for e in solves],
            }
        )
        return
    fields = Table.grid(padding=(0, 2))
    for name, value in (
        ("node", record.id),
        ("parent", record.parent_id or "- (root)"),
        ("children", ", ".join(short(c) for c in children) or "-"),
        ("depth", str(lineage.depth(node_id))),
        ("commit", record.commit),
        ("tree", record.tree),
        ("origin", record.origin.value),
        ("status", record.status.value),
        ("created", record.created_at.isoformat(timespec="seconds")),
        ("run", record.run_id or "-"),
        ("score", str(scores.searched)),
        ("held-out", str(scores.held_out)),
    ):
        fields.add_row(f"[bold]{name}[/]", escape(value))
    console.print(fields)
    if record.proposal.strip():
        console.print("\n[bold]proposal[/]")
        console.print(escape(shown(record.proposal.strip())))
    if scores.by_stage:
        table = Table("benchmark", "stage", "resolved", "attempted", "score", "95%", title="scores")
        for (benchmark, stage), score in sorted(scores.by_stage.items()):
            value = f"{score.value:.3f}" if score.attempted else "-"
            table.add_row(
                benchmark, stage, str(score.resolved), str(score.attempted), value,
                interval_text(score),
            )  # fmt: skip
        console.print(table)
    if evaluations:
        counts: dict[str, int] = {}
        for e in evaluations:
            counts[e.status.value] = counts.get(e.status.value, 0) + 1
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        console.print(f"\n[bold]evaluations[/] {len(evaluations)}: {summary}")
    for r in reviews:
        console.print(
            f"[bold]review[/] {r.kind} {escape(r.reviewer)}: {r.decision} - {escape(r.reason)}"
        )
    for e in solves:
        p = e.payload
        console.print(
            f"[bold]solve[/] {e.id} {e.created_at:%Y-%m-%d %H:%M} {escape(p['repo'])}: "
            f"{escape(p['task'])} ({p['steps']} steps, ${p['cost_usd']:.4f}"
            f"{', applied' if p['applied'] else ''})"
        )


def show_trajectory(
    node: str, archive: Path | None, task: str | None, attempt: int | None, form: str,
    out: Path | None, solve: int | None = None,
) -> None:  # fmt: skip
    from dgm import trajectories

    if task is None and solve is None:
        raise InvalidArgument("--trajectory needs --task TASK: the task whose attempt to show")
    if form not in ("text", "mini-swe-agent"):
        raise InvalidArgument(f"--format {form}: choose text or mini-swe-agent")
    with open_archive(archive) as arc:
        node_id = arc.resolve(node)
        if solve is not None:
            data, patch, cost, status, title = _solve_trajectory(arc, node_id, solve)
        else:
            data, patch, cost, status, title = _task_trajectory(arc, node_id, task, attempt)
    submission = patch.decode(errors="replace")
    if form == "mini-swe-agent":
        converted = trajectories.mini_swe_agent(
            data, submission=submission, cost_usd=cost, status=status
        )
        text = json.dumps(converted, indent=2)
        if out is None:
            print(text)
        else:
            out.write_text(text + "\n")
            warnings.print(f"wrote {out} (open it with mini-swe-agent's inspector)")
        return
    turns, left_out = trajectories.conversation(data)
    console.print(Text(shown(f"node {short(node_id)} {title}: {status}"), style="bold"))
    for turn in turns:
        step = f"[{turn.step}] " if turn.step is not None else ""
        if turn.kind == "assistant":
            console.print(Text(f"{step}assistant", style="bold cyan"))
            if turn.text:
                console.print(Text(shown(turn.text)))
            for call in turn.calls:
                console.print(Text(shown(f"  -> {call['name']} {call['arguments']}"), style="cyan"))
        elif turn.kind == "tool":
            verdict = "" if turn.ok else " (malformed call)"
            console.print(Text(shown(f"{step}tool {turn.name}{verdict}"), style="bold yellow"))
            console.print(Text(shown(turn.text)))
        else:
            console.print(Text(shown(f"{step}{turn.name or 'line'}: {turn.text}"), style="dim"))
    if left_out:
        console.print(f"... and {left_out} more lines (--format mini-swe-agent has them all)")


def _solve_trajectory(
    arc: Archive, node_id: str, solve: int
) -> tuple[bytes, bytes, float, str, str]:
    """(trajectory, patch, cost, how it ended, title) of one of the node's solves."""
    from dgm.solve import kept_solve

    p = kept_solve(arc, node_id, solve).payload
    return (
        arc.blobs.get(p["trajectory_blob"]), arc.blobs.get(p["patch_blob"]), p["cost_usd"],
        p["stop"], f"on {p['repo']} (solve {solve}: {p['task']})",
    )  # fmt: skip


def _task_trajectory(
    arc: Archive, node_id: str, task: str, attempt: int | None
) -> tuple[bytes, bytes, float, str, str]:
    """(trajectory, patch, cost, status, title) of the node's attempt at a task."""
    tried = [e for e in arc.evaluations(node_id) if e.task == task]
    if not tried:
        tasks = sorted({e.task for e in arc.evaluations(node_id)})
        raise InvalidArgument(
            f"node {short(node_id)} has no result on {task}"
            + (f"; it has results on {', '.join(tasks)}" if tasks else "")
        )
    chosen = [e for e in tried if attempt is None or e.attempt == attempt]
    if not chosen:
        attempts = ", ".join(str(e.attempt) for e in tried)
        raise InvalidArgument(f"no attempt {attempt} at {task}; its attempts: {attempts}")
    result = chosen[-1]
    if result.trajectory_blob is None:
        raise InvalidArgument(
            f"attempt {result.attempt} at {task} kept no trajectory ({result.status.value})"
        )
    return (
        arc.blobs.get(result.trajectory_blob),
        arc.blobs.get(result.patch_blob) if result.patch_blob else b"",
        result.cost_usd or 0.0, result.status.value, f"on {task}, attempt {result.attempt}",
    )  # fmt: skip


def cat(
    node: NodeArgument,
    path: Annotated[str, typer.Argument(help="File path inside the agent.")],
    archive: ArchiveOption = DEFAULT_ARCHIVE,
) -> None:
    """Print one file of an agent, read from the git store without a checkout."""
    with open_archive(archive) as arc:
        data = arc.git.read_file(arc.node(arc.resolve(node)).commit, path)
    write_untrusted(data)


def diff(
    node: NodeArgument,
    against: Annotated[
        str | None, typer.Option(help="Compare with this node instead of the parent.")
    ] = None,
    stat: Annotated[bool, typer.Option("--stat", help="Only a summary of changed files.")] = False,
    archive: ArchiveOption = DEFAULT_ARCHIVE,
) -> None:
    """The change a node made to its parent, or its difference from another node."""
    with open_archive(archive) as arc:
        record = arc.node(arc.resolve(node))
        if against is not None:
            old = arc.node(arc.resolve(against)).commit
        else:
            old = arc.node(record.parent_id).commit if record.parent_id else None
        text = arc.git.diff(old, record.commit, stat_only=stat)
    write_untrusted(text)


def lineage(
    node: NodeArgument, archive: ArchiveOption = DEFAULT_ARCHIVE, as_json: JsonOption = False
) -> None:
    """The path from the root to a node, with what each step changed."""
    with open_archive(archive) as arc:
        node_id = arc.resolve(node)
        path = arc.lineage().path_to_root(node_id)[::-1]
        by_id = {n.id: n for n in arc.nodes(path)}
        scores = {n: arc.scores(n) for n in path}
    rows = [by_id[n] for n in path]
    if as_json:
        print_json(
            [
                {
                    "depth": depth,
                    "id": n.id,
                    "parent": n.parent_id,
                    "commit": n.commit,
                    "origin": n.origin.value,
                    "status": n.status.value,
                    "score": scores[n.id].searched,
                    "held_out": scores[n.id].held_out,
                    "summary": n.summary,
                    "created_at": n.created_at.isoformat(),
                }
                for depth, n in enumerate(rows)
            ]
        )
        return
    table = Table("depth", "node", "origin", "status", "score", "held-out", "change")
    for depth, n in enumerate(rows):
        table.add_row(
            str(depth),
            short(n.id),
            n.origin.value,
            n.status.value,
            str(scores[n.id].searched),
            str(scores[n.id].held_out),
            escape(shown(n.summary)),
        )
    console.print(table)


def best_of_run(arc: Archive, run: str | None, what: str):
    """The answer of a run (the latest, or the one named), which must have one."""
    from dgm.run_status import find_run, run_answer

    answer = run_answer(arc, find_run(arc, run))
    if answer.node is None:
        raise InvalidArgument(
            f"run {answer.run.name!r} has no scored node yet; name a node to {what}"
        )
    return answer


def predictions(
    node: Annotated[
        str, typer.Argument(help="Node id (or prefix), or `best`: the answer of the latest run.")
    ],
    benchmark: Annotated[str, typer.Option(help="The results' benchmark (`dgm bench list`).")],
    out: Annotated[Path, typer.Option("--out", help="The JSONL file to write.")],
    run: Annotated[
        str | None,
        typer.Option("--run", help="Only this run's results (with `best`: its answer)."),
    ] = None,
    archive: ArchiveOption = DEFAULT_ARCHIVE,
    as_json: JsonOption = False,
) -> None:
    """A node's patches as SWE-bench predictions: the JSONL that swebench's run_evaluation
    and sb-cli read (model_name_or_path: dgm-<node id>)."""
    from dgm.predictions import model_name, node_predictions, write_predictions
    from dgm.run_status import find_run

    with open_archive(archive) as arc:
        chosen_run = find_run(arc, run) if run else None
        node_id = best_of_run(arc, run, "predict").node if node == "best" else arc.resolve(node)
        found = node_predictions(
            arc, node_id, benchmark, run_id=chosen_run.id if chosen_run else None
        )
    write_predictions(found, out)
    empty = sum(not p["model_patch"].strip() for p in found)
    if as_json:
        print_json({"node": node_id, "model_name_or_path": model_name(node_id),
                    "predictions": len(found), "empty": empty, "out": str(out)})  # fmt: skip
        return
    console.print(
        f"wrote {len(found)} predictions of {short(node_id)} ({model_name(node_id)}) to {out}"
        + (f"; {empty} with an empty patch" if empty else "")
    )


def export(
    node: Annotated[
        str, typer.Argument(help="Node id (or prefix), or `best`: the answer of the latest run.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Empty or new folder to write.")],
    run: Annotated[
        str | None, typer.Option("--run", help="With `best`: the answer of this run (its name).")
    ] = None,
    archive: ArchiveOption = DEFAULT_ARCHIVE,
    as_json: JsonOption = False,
) -> None:
    """Export an agent: plain files, a git bundle of its lineage, and provenance.json.

    `best` is a run's answer as its search chose it on the searched tasks; held-out results
    never choose it.
    """
    chosen = None
    with open_archive(archive) as arc:
        if node == "best":
            answer = best_of_run(arc, run, "export")
            node_id = answer.node
            chosen = {
                "run": answer.run.name, "run_id": answer.run.id, "rule": answer.rule,
                "resolved": answer.resolved, "attempted": answer.attempted,
            }  # fmt: skip
        elif run is not None:
            raise InvalidArgument("--run goes with `best`; a node named by id needs none")
        else:
            node_id = arc.resolve(node)
        from dgm.review.service import export_passed

        export_passed(arc, node_id, out, actor=_person(), chosen=chosen)
    if as_json:
        print_json({"node": node_id, "out": str(out), "chosen": chosen})
        return
    console.print(
        f"Exported node {short(node_id)} to {out}/ (agent/, agent.bundle, provenance.json)"
    )
    if chosen:
        console.print(
            f"It is run {chosen['run']}'s answer, {chosen['resolved']}/{chosen['attempted']} on "
            f"its searched tasks; chosen as {chosen['rule']}."
        )


def _person() -> str:
    import getpass

    from dgm.review.service import REVIEWER_VARIABLE

    return os.environ.get(REVIEWER_VARIABLE) or getpass.getuser()


def add_agent(
    path: Annotated[Path, typer.Argument(help="Folder holding the agent's code.")],
    parent: Annotated[str | None, typer.Option(help="Node this agent descends from.")] = None,
    message: Annotated[
        str, typer.Option("--message", "-m", help="What this agent is or changes.")
    ] = "",
    origin: Annotated[
        Origin, typer.Option(help="Where the agent came from.", case_sensitive=False)
    ] = Origin.HUMAN,
    archive: ArchiveOption = DEFAULT_ARCHIVE,
    as_json: JsonOption = False,
) -> None:
    """Put an agent of your own into the archive (`.gitignore` is honoured)."""
    with open_archive(archive) as arc:
        parent_id = arc.resolve(parent) if parent else None
        node = arc.add_node(path, parent=parent_id, origin=origin, proposal=message)
    if as_json:
        print_json(node)
    else:
        console.print(f"Added node {node.id} (commit {node.commit[:12]})")


def fsck(archive: ArchiveOption = DEFAULT_ARCHIVE, as_json: JsonOption = False) -> None:
    """Check that every node row matches the git store; exit 1 if the archive is damaged."""
    with open_archive(archive) as arc:
        report = arc.check()
    if as_json:
        print_json({"ok": report.ok, **jsonable(report)})
    else:
        for problem in report.problems:
            console.print(f"[red]damaged[/] {escape(problem)}")
        if report.orphan_refs:
            console.print(
                f"{len(report.orphan_refs)} node refs have no row (left by an interrupted add; "
                "harmless)"
            )
        if report.ok:
            console.print(f"ok: {report.nodes} nodes match the git store")
    if not report.ok:
        raise typer.Exit(1)


def gc(archive: ArchiveOption = DEFAULT_ARCHIVE) -> None:
    """Pack the git store (delta-compresses agents that differ by small edits)."""
    with open_archive(archive) as arc:
        before = arc.disk_usage()["git"]
        with console.status("packing the git store"):
            arc.git.gc()
        after = arc.disk_usage()["git"]
    console.print(f"git store: {before:,} -> {after:,} bytes")
