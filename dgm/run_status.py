"""What `dgm status` and `dgm export best` report about a run, read from the archive alone
(the run may be dead)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from archive import Archive, Run
from archive.errors import InvalidArgument
from archive.events import EventKind
from archive.records import NodeStatus, Score, jsonable
from dgm import budget
from dgm.run_population import run_population
from dgm.search import Population, answer_of


@dataclass(frozen=True)
class Answer:
    """A run's answer: what its search chose on the searched tasks, and by which rule."""

    run: Run
    node: str | None
    resolved: int
    attempted: int
    rule: str
    selector: dict[str, Any]
    population: Population


def find_run(archive: Archive, name: str | None = None) -> Run:
    """The latest run of this name (None: the latest run)."""
    runs = [r for r in archive.runs() if name is None or r.name == name]
    if not runs:
        which = f"named {name!r} " if name else ""
        raise InvalidArgument(f"no run {which}in {archive.root}; start one with `dgm run CONFIG`")
    return runs[-1]


def run_answer(archive: Archive, run: Run) -> Answer:
    """The run's answer as its search gives it, from its results on the searched tasks only:
    held-out results never choose it."""
    started = archive.last_event(run.id, EventKind.RUN_STARTED, EventKind.RUN_RESUMED)
    tasks = started.payload if started else {}
    population = run_population(
        archive, run.id, benchmark=tasks.get("benchmark", ""), model=tasks.get("model", ""),
        tasks=set(tasks.get("searched", [])),
    )  # fmt: skip
    selector = run.config.get("selector", {})
    name, params = selector.get("name", "score_child_prop"), selector.get("params", {})
    node, rule = answer_of(name, params, population)
    resolved, attempted = population.members[node].score() if node else (0, 0)
    chosen = {"name": name, "params": params}
    return Answer(run, node, resolved, attempted, rule, chosen, population)


def run_status(archive: Archive, name: str | None = None) -> dict[str, Any]:
    """`dgm status`: the latest run of this name (None: the latest run)."""
    return status_of(archive, find_run(archive, name))


def run_config(archive: Archive, run: Run) -> dict[str, Any]:
    """`dgm status --config`: the run's resolved config (after `--set`) and its hash, what its
    models cost as metered (USD per million tokens in and out; None: no price known), and
    the config hash of each session (a run continued with other settings changes it)."""
    started = archive.last_event(run.id, EventKind.RUN_STARTED, EventKind.RUN_RESUMED)
    sessions = sorted(
        (e for kind in (EventKind.RUN_STARTED, EventKind.RUN_RESUMED)
         for e in archive.events_of(run.id, kind)),
        key=lambda e: e.id,
    )  # fmt: skip
    return {
        "name": run.name,
        "config": run.config,
        "config_hash": run.config_hash,
        "prices": started.payload.get("prices") if started else None,
        "sessions": [
            {"kind": e.kind, "at": e.created_at, "config_hash": e.payload.get("config_hash")}
            for e in sessions
        ],
    }


def in_flight(arc: Archive, run_id: str) -> list[dict[str, Any]]:
    """Units started since the run last (re)started that have not finished or failed, each
    with the machine it runs on (None until it has started on one)."""
    # whatever was in flight before the run last (re)started died with its process
    last_start = arc.last_event(run_id, EventKind.RUN_STARTED, EventKind.RUN_RESUMED)
    after = last_start.id if last_start else 0
    started: dict[str, list[dict[str, Any]]] = {}
    while batch := arc.events(run_id=run_id, after=after, limit=5000):
        after = batch[-1].id
        for e in batch:
            unit, units = e.payload.get("unit"), started.get(e.payload.get("unit"), [])
            if e.kind == EventKind.UNIT_STARTED:
                started.setdefault(unit, []).append({"since": e.created_at, "machine": None})
            elif e.kind == EventKind.UNIT_PLACED and units:
                # the first not yet placed; else it runs again elsewhere (its node was lost)
                placed = next((u for u in units if u["machine"] is None), units[0])
                placed["machine"] = e.payload["machine"]
            elif e.kind in (EventKind.UNIT_FINISHED, EventKind.UNIT_FAILED) and units:
                units.pop(0)
    now = datetime.now(UTC)
    return [
        {"unit": unit, "machine": u["machine"], "since": u["since"],
         "seconds": round((now - u["since"]).total_seconds(), 1)}
        for unit, units in started.items()
        for u in units
    ]  # fmt: skip


def status_of(archive: Archive, run: Run) -> dict[str, Any]:
    counts = archive.event_counts(run.id)
    done = counts.get(EventKind.UNIT_FINISHED, 0) + counts.get(EventKind.UNIT_FAILED, 0)
    run_nodes = [n for n in archive.nodes() if n.run_id == run.id]
    answer = run_answer(archive, run)
    held_out = archive.last_event(run.id, EventKind.HELD_OUT)
    tokens, usd = archive.fm_spend(run.id)
    limits = budget.Budget.model_validate(run.config.get("budget", {}))
    lines = budget.lines(limits, archive, run, answer.population)
    best = {
        "id": answer.node, **jsonable(Score(answer.resolved, answer.attempted)),
    }  # fmt: skip
    return {
        "id": run.id,
        "name": run.name,
        # a killed run's row still says running: re-running its command continues it
        "state": run.status,
        "reason": run.stop_reason,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "units_done": done,
        "in_flight": (
            max(0, counts.get(EventKind.UNIT_STARTED, 0) - done) if run.status == "running" else 0
        ),
        # each unit in flight and the machine it runs on
        "units": in_flight(archive, run.id) if run.status == "running" else [],
        "nodes": len(run_nodes),
        "selector": answer.selector,
        "best": best if answer.node else None,
        "answer_rule": answer.rule,
        "held_out": (
            jsonable(Score(held_out.payload["resolved"], held_out.payload["attempted"]))
            | {"id": held_out.node_id}
            if held_out
            else None
        ),
        "spend": {"usd": usd, "tokens": tokens},
        # each budget line: what it allows (wall clock in seconds) and what is spent
        "budget": {k: {"limit": v.limit, "spent": v.spent} for k, v in lines.items()},
        "awaiting_review": sum(n.status is NodeStatus.AWAITING_APPROVAL for n in run_nodes),
        # the scheduler holding the run, if any: a running run with none was killed
        "held_by": (
            {"host": lease.host, "pid": lease.pid, "silent_s": round(lease.silent_s, 1)}
            if (lease := archive.lease(run.id))
            else None
        ),
    }
