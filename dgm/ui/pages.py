"""What each page of the web UI shows, as plain data read from the archive: the HTML
templates render it and the JSON answers are it, so a script sees what a person sees."""

from __future__ import annotations

import bisect
from typing import Any

from archive import Archive
from archive.errors import InvalidArgument
from archive.events import EventKind
from archive.records import HELD_OUT_STAGE, NodeStatus
from dgm import trajectories
from dgm.review import service
from dgm.run_status import in_flight, status_of
from dgm.solve import kept_solve
from dgm.ui import charts, lineage_svg, rendering

EVENTS_SHOWN = 30
LATEST_NODES = 10
CHART_POINTS = 200
LOG_CHARS = 100_000


def runs_page(arc: Archive) -> dict[str, Any]:
    return {"runs": [status_of(arc, run) for run in reversed(arc.runs())]}


def run_page(arc: Archive, run_id: str) -> dict[str, Any]:
    run = arc.run(arc_run_id(arc, run_id))
    return {"run": status_of(arc, run), **live_state(arc, run.id)}


def arc_run_id(arc: Archive, ref: str) -> str:
    """A run by its id or a unique prefix of it."""
    found = [r.id for r in arc.runs() if r.id.startswith(ref)]
    if len(found) != 1:
        raise InvalidArgument(f"no run {ref!r}" if not found else f"run id {ref!r} is ambiguous")
    return found[0]


def live_state(arc: Archive, run_id: str) -> dict[str, Any]:
    """What the dashboard updates while a run goes on: units in flight, recent events, the
    latest nodes, the charts; `last_event` tells a client whether anything changed."""
    recent = arc.events(run_id=run_id, limit=EVENTS_SHOWN, last=True)
    nodes = [n for n in arc.nodes() if n.run_id == run_id]
    return {
        "last_event": recent[-1].id if recent else 0,
        "nodes": len(nodes),
        "in_flight": in_flight(arc, run_id),
        "events": [
            {
                "id": e.id,
                "at": e.created_at,
                "kind": e.kind,
                "node": e.node_id,
                "what": _event_text(e.payload),
            }
            for e in reversed(recent)
        ],
        "latest_nodes": [
            {"id": n.id, "status": n.status, "summary": n.summary, "at": n.created_at}
            for n in reversed(nodes[-LATEST_NODES:])
        ],
        "charts": run_charts(arc, run_id),
    }


def run_charts(arc: Archive, run_id: str) -> dict[str, str]:
    """Best and mean score of the run's nodes over units done and over time, and FM spend
    over time, as SVG."""
    results = [r for r in arc.run_results(run_id) if r[2] != HELD_OUT_STAGE]
    # a result is recorded just before its unit's event: +1 counts the unit it belongs to
    unit_times = sorted(e.created_at for e in arc.events_of(run_id, EventKind.UNIT_FINISHED))
    start = arc.run(run_id).started_at
    scores: dict[str, list[int]] = {}
    total, counted = 0.0, 0
    by_units: list[tuple[float, float, float]] = []
    by_time: list[tuple[float, float, float]] = []
    step = max(1, len(results) // CHART_POINTS)
    for i, (node, resolved, _, at) in enumerate(results):
        score = scores.setdefault(node, [0, 0])
        if score[1]:
            total -= score[0] / score[1]
        else:
            counted += 1
        score[0] += int(resolved)
        score[1] += 1
        total += score[0] / score[1]
        if i % step == 0 or i == len(results) - 1:
            best = max(r / a for r, a in scores.values())
            units = bisect.bisect_right(unit_times, at) + 1
            by_units.append((units, best, total / counted))
            by_time.append(((at - start).total_seconds() / 60, best, total / counted))
    spend = arc.spend_series(run_id)
    usd = any(cost for _, _, cost in spend)
    running, points = 0.0, []
    for at, tokens, cost in spend:
        running += cost if usd else tokens / 1000
        points.append(((at - start).total_seconds() / 60, running))

    def two(points: list[tuple[float, float, float]]) -> list[charts.Series]:
        return [
            charts.Series("best", [(x, b) for x, b, _ in points]),
            charts.Series("mean", [(x, m) for x, _, m in points]),
        ]

    spent = "USD" if usd else "thousand tokens"
    return {
        "score_by_units": charts.line_chart(
            "score over units", two(by_units), x_label="units", y_max=1.0
        ),
        "score_by_time": charts.line_chart(
            "score over time", two(by_time), x_label="min", y_max=1.0
        ),
        "spend_by_time": charts.line_chart(
            f"spend ({spent})", [charts.Series(spent, points)], x_label="min"
        ),
    }


def tree_page(
    arc: Archive, run_id: str | None, *, collapse: bool, opened: frozenset[str]
) -> tuple[dict[str, Any], lineage_svg.Layout]:
    rows = arc.summaries()
    if run_id is not None:
        run_id = arc_run_id(arc, run_id)
        runs = arc.node_runs()
        parents = {r.id: r.parent_id for r in rows}
        keep = {n for n, r in runs.items() if r == run_id}
        for node in list(keep):  # and the ancestors it grew from
            while (node := parents.get(node)) is not None and node not in keep:
                keep.add(node)
        rows = [r for r in rows if r.id in keep]
    tree = lineage_svg.layout(rows, arc.review_marks(), collapse_dead=collapse, opened=opened)
    return {"run": run_id, "collapse": collapse, **tree.as_json()}, tree


def node_page(arc: Archive, node_id: str) -> dict[str, Any]:
    node_id = arc.resolve(node_id)
    node = arc.node(node_id)
    lineage = arc.lineage()
    diff = arc.git.diff(arc.node(node.parent_id).commit, node.commit) if node.parent_id else ""
    state = service.gate_state(arc, node)
    meta = node.meta
    trajectory = arc.blobs.get(meta["trajectory_blob"]) if meta.get("trajectory_blob") else None
    turns, left_out = trajectories.conversation(trajectory)
    evaluations = arc.evaluations(node_id)
    stages: dict[str, list[dict[str, Any]]] = {}
    for e in sorted(evaluations, key=lambda e: (e.stage, e.task, e.attempt)):
        stages.setdefault(e.stage, []).append(
            {
                "id": e.id,
                "benchmark": e.benchmark,
                "task": e.task,
                "attempt": e.attempt,
                "status": e.status,
                "resolved": e.resolved,
                "duration_s": e.duration_s,
                "cost_usd": e.cost_usd,
                "model": e.model,
            }
        )
    calls = arc.fm_calls(node_id=node_id)
    scores = arc.scores(node_id)
    solves = [{"id": e.id, "at": e.created_at, **e.payload}
              for e in arc.node_events(node_id, EventKind.SOLVED)]  # fmt: skip
    return {
        "node": node,
        "ancestors": lineage.ancestors(node_id),
        "children": lineage.children(node_id),
        "scores": {
            "searched": scores.searched,
            "held_out": scores.held_out,
            "by_stage": [
                {"benchmark": b, "stage": s, "resolved": v.resolved, "attempted": v.attempted}
                for (b, s), v in sorted(scores.by_stage.items())
            ],
        },
        "diff": diff,
        "files": rendering.file_diffs(diff),
        "diagnosis": meta.get("diagnosis"),
        "problem_statement": meta.get("problem_statement"),
        "tests_output": meta.get("tests_output"),
        "trajectory": turns,
        "trajectory_left_out": left_out,
        "stages": stages,
        "solves": solves,
        "fm": {
            "calls": len(calls),
            "tokens": sum(c.input_tokens + c.output_tokens for c in calls),
            "usd": sum(c.cost_usd for c in calls),
        },
        "review": state.review,
        "findings": service.findings_of(state.review) if state.review else [],
        "decision": state.decision,
        "reviews": state.reviews,
        "gates": state.verdicts_json(),
        "decidable": node.parent_id is not None
        and node.status is not NodeStatus.REJECTED
        and state.reviewed,
    }


def evaluation_page(arc: Archive, evaluation_id: int) -> dict[str, Any]:
    e = arc.evaluation(evaluation_id)

    def text(ref: str | None) -> str:
        data = arc.blobs.get(ref).decode(errors="replace") if ref else ""
        return data if len(data) <= LOG_CHARS else data[-LOG_CHARS:]

    patch = text(e.patch_blob)
    turns, left_out = trajectories.conversation(
        arc.blobs.get(e.trajectory_blob) if e.trajectory_blob else None
    )
    return {
        "evaluation": e,
        "node": arc.node(e.node_id),
        "log": text(e.log_blob),
        "patch": patch,
        "files": rendering.file_diffs(patch),
        "trajectory": turns,
        "trajectory_left_out": left_out,
    }


def solve_page(arc: Archive, node_id: str, solve_id: int) -> dict[str, Any]:
    """What the node's agent did in one `dgm solve`: its patch and its conversation."""
    node_id = arc.resolve(node_id)
    solve = kept_solve(arc, node_id, solve_id)
    patch = arc.blobs.get(solve.payload["patch_blob"]).decode(errors="replace")
    turns, left_out = trajectories.conversation(arc.blobs.get(solve.payload["trajectory_blob"]))
    return {
        "node": arc.node(node_id),
        "solve": {"id": solve.id, "at": solve.created_at, **solve.payload},
        "patch": patch,
        "files": rendering.file_diffs(patch),
        "trajectory": turns,
        "trajectory_left_out": left_out,
    }


def compare_page(arc: Archive, a: str, b: str) -> dict[str, Any]:
    first, second = arc.node(arc.resolve(a)), arc.node(arc.resolve(b))
    diff = arc.git.diff(first.commit, second.commit)
    return {"a": first, "b": second, "diff": diff, "files": rendering.file_diffs(diff)}


def queue_page(arc: Archive) -> dict[str, Any]:
    """Nodes waiting for a person, oldest first, with what each gate says."""
    waiting = []
    held = [n for n in arc.nodes() if n.status is NodeStatus.AWAITING_APPROVAL]
    for state in service.gate_states(arc, held):
        n = state.node
        waiting.append(
            {
                "node": n.id,
                "parent": n.parent_id,
                "summary": n.summary,
                "run": n.run_id,
                "risk": state.review.risk if state.review else None,
                "findings": len(state.review.findings or []) if state.review else 0,
                "gates": {g: v.state for g, v in state.verdicts.items()},
                "decidable": state.reviewed,
            }
        )
    return {"waiting": waiting}


def _event_text(payload: dict[str, Any]) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in payload.items() if not isinstance(v, dict | list))
    return shown[:200]
