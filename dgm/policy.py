"""What a run does next: the population it has grown, and the policy that turns it into units.

A unit is `expand(parent)` or `evaluate(node, task)`. Every node is evaluated in stages: the
first stage's tasks, then the next stage's only if its score on the stage reached the stage's
threshold. A node whose staged evaluation is complete is admitted to the archive and can be
selected as a parent. Two modes share this:

- async (HGM): evaluations owed come first; otherwise a free worker expands a parent chosen at
  once. No worker ever waits for another.
- generational (DGM): a generation is k expansions from parents chosen when it starts, plus the
  staged evaluation of its children; the next generation starts when all of it is done.

The policy holds no state that the archive does not: a resumed run rebuilds its population
from the archive and carries on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from archive import Archive
from archive.records import NodeStatus
from dgm.selectors import Candidate, Selector


@dataclass(frozen=True)
class Unit:
    kind: Literal["expand", "evaluate"]
    node: str
    task: str | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.node[:8]}" + (f" {self.task}" if self.task else "")


@dataclass
class Member:
    id: str
    parent: str | None
    usable: bool = True
    """Its own tests passed: it may be evaluated (a rejected child may not)."""
    admitted: bool = False
    results: dict[str, bool | None] = field(default_factory=dict)
    """Task -> resolved; None for a harness error (done, but not counted)."""
    children: int = 0
    """Children admitted to the archive."""

    def score(self, tasks: list[str] | None = None) -> tuple[int, int]:
        counted = [
            r for t, r in self.results.items() if r is not None and (tasks is None or t in tasks)
        ]
        return sum(counted), len(counted)


class Population:
    def __init__(self) -> None:
        self.members: dict[str, Member] = {}

    @classmethod
    def from_archive(
        cls, archive: Archive, run_id: str, *, benchmark: str, model: str, tasks: set[str]
    ) -> Population:
        """A run's nodes with their results on `tasks` (those the search evaluates on) by the
        agent model; rejected children are unusable, admitted ones counted by their parents."""
        population = cls()
        nodes = [n for n in archive.nodes() if n.run_id == run_id]
        for node in nodes:
            results = {
                e.task: (e.resolved if e.status.counted else None)
                for e in archive.evaluations(node.id)
                if (e.benchmark, e.model) == (benchmark, model) and e.task in tasks
            }
            usable = node.status is not NodeStatus.REJECTED
            population.add(Member(node.id, node.parent_id, usable=usable, results=results))
        for node in nodes:  # admitted last, so parents count their admitted children
            if node.status is NodeStatus.ADMITTED:
                population.admit(node.id)
        return population

    def best(self) -> tuple[Member | None, tuple[int, int]]:
        """The admitted member with the highest score, then the most attempts, then the
        oldest; with its (resolved, attempted)."""
        scored = [(m.score(), m) for m in self.members.values() if m.admitted]
        scored = [(score, m) for score, m in scored if score[1]]
        if not scored:
            return None, (0, 0)
        score, member = max(scored, key=lambda pair: (pair[0][0] / pair[0][1], pair[0][1]))
        return member, score

    def add(self, member: Member) -> None:
        self.members[member.id] = member

    def admit(self, node: str) -> None:
        member = self.members[node]
        if not member.admitted:
            member.admitted = True
            if member.parent in self.members:
                self.members[member.parent].children += 1


class EvolutionPolicy:
    def __init__(
        self,
        population: Population,
        stages: list[list[str]],
        thresholds: list[float],
        selector: Selector,
        *,
        mode: Literal["async", "generational"] = "async",
        generation_size: int = 2,
        rng: random.Random | None = None,
    ):
        self.population, self.stages, self.thresholds = population, stages, thresholds
        self.selector, self.mode, self.generation_size = selector, mode, generation_size
        self.rng = rng or random.Random()
        self.generation: list[str] = []  # parents of the current generation's expansions
        self._expansions_started = 0
        self.expansions_left: int | None = None
        """Expansions it may still start (None: no limit); evaluations owed go on without."""

    # -- what is owed ------------------------------------------------------------------------

    def owed(self, member: Member) -> list[str]:
        """The tasks of the member's current stage it has no result for (empty: done)."""
        if not member.usable:
            return []
        for tasks, threshold in zip(self.stages, self.thresholds, strict=True):
            missing = [t for t in tasks if t not in member.results]
            if missing:
                return missing
            resolved, attempted = member.score(tasks)
            if not attempted or resolved / attempted < threshold:
                return []
        return []

    def to_admit(self, in_flight: set[Unit]) -> list[str]:
        """Members whose staged evaluation is complete and who are not admitted yet."""
        busy = {u.node for u in in_flight if u.kind == "evaluate"}
        return [
            m.id
            for m in self.population.members.values()
            if m.usable and not m.admitted and m.id not in busy and not self.owed(m)
        ]

    def candidates(self, in_flight: set[Unit]) -> list[Candidate]:
        busy = {u.node for u in in_flight if u.kind == "evaluate"}
        found = []
        for m in self.population.members.values():
            resolved, attempted = m.score()
            if m.admitted and attempted and m.id not in busy and not self.owed(m):
                found.append(Candidate(m.id, resolved / attempted, m.children))
        return found

    # -- the next unit -----------------------------------------------------------------------

    def next_unit(self, in_flight: set[Unit]) -> Unit | None:
        """The unit a free worker should start now; None: nothing until a unit finishes (or,
        with nothing in flight, nothing left to do)."""
        if unit := self._evaluation(in_flight):
            return unit
        if self.expansions_left is not None and self.expansions_left <= 0:
            return None
        unit = self._expansion(in_flight)
        if unit is not None and self.expansions_left is not None:
            self.expansions_left -= 1
        return unit

    def _expansion(self, in_flight: set[Unit]) -> Unit | None:
        if self.mode == "async":
            candidates = self.candidates(in_flight)
            if not candidates:
                return None
            return Unit("expand", self.selector.select(candidates, self.rng))
        if self._expansions_started >= len(self.generation):
            if in_flight:
                return None  # the generation ends when all of it is done
            candidates = self.candidates(in_flight)
            if not candidates:
                return None
            self.generation = [
                self.selector.select(candidates, self.rng) for _ in range(self.generation_size)
            ]
            self._expansions_started = 0
        self._expansions_started += 1
        return Unit("expand", self.generation[self._expansions_started - 1])

    def _evaluation(self, in_flight: set[Unit]) -> Unit | None:
        for member in self.population.members.values():
            for task in self.owed(member):
                unit = Unit("evaluate", member.id, task)
                if unit not in in_flight:
                    return unit
        return None

    # -- results -----------------------------------------------------------------------------

    def evaluated(self, node: str, task: str, resolved: bool | None) -> None:
        self.population.members[node].results[task] = resolved

    def expanded(self, parent: str, child: str | None, usable: bool) -> None:
        if child is not None:
            self.population.add(Member(child, parent, usable=usable))

    def failed(self, unit: Unit) -> None:
        """A unit that raised: an evaluation counts as a harness error, so it is not offered
        again (an expansion may be)."""
        if unit.kind == "evaluate" and unit.task is not None:
            self.evaluated(unit.node, unit.task, None)
