"""What `dgm status` reports about a run, read from the archive alone (the run may be dead)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from archive import Archive
from archive.errors import InvalidArgument
from archive.records import NodeStatus
from dgm.policy import Population
from dgm.selectors import make_selector


def run_status(archive: Archive, name: str | None = None) -> dict[str, Any]:
    runs = [r for r in archive.runs() if name is None or r.name == name]
    if not runs:
        which = f"named {name!r} " if name else ""
        raise InvalidArgument(f"no run {which}in {archive.root}; start one with `dgm run CONFIG`")
    run = runs[-1]
    counts = archive.event_counts(run.id)
    done = counts.get("unit_finished", 0) + counts.get("unit_failed", 0)
    run_nodes = [n for n in archive.nodes() if n.run_id == run.id]
    started = archive.last_event(run.id, "run_started", "run_resumed")
    tasks = started.payload if started else {}
    # the search's own figures: its tasks, not the held-out ones
    population = Population.from_archive(
        archive, run.id, benchmark=tasks.get("benchmark", ""), model=tasks.get("model", ""),
        tasks=set(tasks.get("searched", [])),
    )  # fmt: skip
    selector = run.config.get("selector", {})
    chooser = make_selector(selector.get("name", "score_child_prop"), selector.get("params", {}))
    answer = chooser.answer(population)
    resolved, attempted = population.members[answer].score() if answer else (0, 0)
    held_out = archive.last_event(run.id, "held_out")
    tokens, usd = archive.fm_spend(run.id)
    spent = {
        "usd": usd,
        "tokens": tokens,
        "evaluations": population.evaluations,
        "expansions": expansions_done(len(run_nodes), counts),
        "wall_clock": ((run.finished_at or _now()) - run.started_at).total_seconds(),
    }
    limits = run.config.get("budget", {})
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
        "nodes": len(run_nodes),
        "selector": {"name": chooser.name, "params": selector.get("params", {})},
        "best": {"id": answer, "resolved": resolved, "attempted": attempted} if answer else None,
        "held_out": (
            {k: held_out.payload[k] for k in ("resolved", "attempted")} | {"id": held_out.node_id}
            if held_out
            else None
        ),
        "spend": {"usd": usd, "tokens": tokens},
        # each budget line: what it allows (wall clock in seconds) and what is spent
        "budget": {
            name: {"limit": _limit(name, limits.get(name)), "spent": spent[name]} for name in spent
        },
        "awaiting_review": sum(n.status is NodeStatus.AWAITING_APPROVAL for n in run_nodes),
    }


def expansions_done(nodes: int, counts: dict[str, int]) -> int:
    """Expansions a run has made: its children (all its nodes but the seed), and those that
    ended without one (`expansion_failed` events, from `Archive.event_counts`)."""
    return max(0, nodes - 1) + counts.get("expansion_failed", 0)


def _limit(name: str, value: Any) -> float | None:
    if value is None or name != "wall_clock":
        return value
    return _seconds(value)


def _seconds(value: str | float) -> float:
    """Seconds of a duration as the config stores it (ISO 8601, `PT36H`) or a number."""
    from pydantic import TypeAdapter

    return TypeAdapter(timedelta).validate_python(value).total_seconds()


def _now() -> datetime:
    return datetime.now(UTC)
