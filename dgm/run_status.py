"""What `dgm status` reports about a run, read from the archive alone (the run may be dead)."""

from __future__ import annotations

from typing import Any

from archive import Archive
from archive.errors import InvalidArgument
from archive.records import NodeStatus


def run_status(archive: Archive, name: str | None = None) -> dict[str, Any]:
    runs = [r for r in archive.runs() if name is None or r.name == name]
    if not runs:
        which = f"named {name!r} " if name else ""
        raise InvalidArgument(f"no run {which}in {archive.root}; start one with `dgm run CONFIG`")
    run = runs[-1]
    counts = archive.event_counts(run.id)
    done = counts.get("unit_finished", 0) + counts.get("unit_failed", 0)
    nodes = [n for n in archive.summaries() if n.id in _run_nodes(archive, run.id)]
    scored = [n for n in nodes if n.status is NodeStatus.ADMITTED and n.score.attempted]
    best = max(scored, key=lambda n: (n.score.value, n.score.attempted), default=None)
    tokens, usd = archive.fm_spend(run.id)
    return {
        "id": run.id,
        "name": run.name,
        # a killed run's row still says running: re-running its command continues it
        "state": run.status,
        "reason": run.stop_reason,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "units_done": done,
        "in_flight": max(0, counts.get("unit_started", 0) - done) if run.status == "running" else 0,
        "nodes": len(nodes),
        "best": (
            {"id": best.id, "resolved": best.score.resolved, "attempted": best.score.attempted}
            if best
            else None
        ),
        "spend": {"usd": usd, "tokens": tokens},
        "budget": run.config.get("budget", {}),
        "awaiting_review": sum(n.status is NodeStatus.AWAITING_APPROVAL for n in nodes),
    }


def _run_nodes(archive: Archive, run_id: str) -> set[str]:
    return {n.id for n in archive.nodes() if n.run_id == run_id}
