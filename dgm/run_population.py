"""A run's search state rebuilt from the archive: what the engine resumes from and what `dgm
status` and `dgm export best` read. The archive holds everything a policy knows."""

from __future__ import annotations

from collections import Counter

from archive import Archive
from archive.records import EvalStatus, Evaluation, NodeStatus
from dgm.search import Evaluated, Member, Population


def run_population(
    archive: Archive,
    run_id: str,
    *,
    benchmark: str,
    model: str,
    tasks: set[str],
    held: dict[str, frozenset[str]] | None = None,
) -> Population:
    """A run's nodes with their results on `tasks` (those the search evaluates on) by the
    agent model: rejected ones unusable, admitted ones decided and counted by their parents,
    those `held` at gates for a person, each node's expansions (children and failed ones)
    and the judge's verdicts."""
    held = held or {}
    population = Population()
    nodes = [n for n in archive.nodes() if n.run_id == run_id]
    recorded = archive.run_node_evaluations(run_id)
    for node in nodes:  # oldest first: parents come before their children
        results = {
            e.task: evaluated(e)
            for e in recorded.get(node.id, [])
            if (e.benchmark, e.model) == (benchmark, model) and e.task in tasks
        }
        usable = node.status is not NodeStatus.REJECTED
        member = Member(node.id, node.parent_id, usable=usable, held=held.get(node.id, frozenset()))
        population.add(member, results)
    for node in nodes:  # decided last, so parents count their admitted children
        if node.status is NodeStatus.ADMITTED:
            population.decide(node.id, True)
    failed = Counter(e.node_id for e in archive.events_of(run_id, "expansion_failed"))
    for member in population.members.values():
        made = len(population.offspring[member.id])
        population.expansions[member.id] = made + failed[member.id]
    for event in archive.events_of(run_id, "judged"):
        if event.node_id in population.members:
            population.judged(event.node_id, event.payload["interesting"])
    return population


def evaluated(evaluation: Evaluation) -> Evaluated:
    """What the search makes of a recorded result (a harness error counts for nothing)."""
    status = evaluation.status
    return Evaluated(
        evaluation.resolved if status.counted else None,
        patched=status in (EvalStatus.RESOLVED, EvalStatus.UNRESOLVED),
    )
