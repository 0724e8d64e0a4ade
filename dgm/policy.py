"""What a run does next: the population it has grown, and the policy that turns it into units.

A unit is `expand(parent)` or `evaluate(node, task)`. The selector (see `dgm.selectors`) picks
each unit from what the policy knows:

- staged evaluation: a node owes the first stage's tasks, then the next stage's only if its
  score on the stage reached the stage's threshold; a usable node that owes nothing is admitted
  to the archive;
- two modes for selectors that pick parents: async (HGM) expands a parent chosen at once when a
  worker frees up; generational (DGM) chooses k parents when a generation starts and starts
  nothing new until all of it, children's evaluations included, is done.

The policy holds no state that the archive does not: a resumed run rebuilds its population
from the archive and carries on.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from archive import Archive
from archive.records import NodeStatus

if TYPE_CHECKING:
    from dgm.selectors import Candidates, Selector


@dataclass(frozen=True)
class Unit:
    kind: Literal["expand", "evaluate"]
    node: str
    task: str | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.node[:8]}" + (f" {self.task}" if self.task else "")


@dataclass(eq=False)
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
    interesting: bool | None = None
    """The interestingness judge's verdict, where one was asked for."""

    def score(self, tasks: Iterable[str] | None = None) -> tuple[int, int]:
        """(resolved, attempted) over its counted results, or over those of `tasks`."""
        wanted = None if tasks is None else set(tasks)
        counted = [
            r for t, r in self.results.items() if r is not None and (wanted is None or t in wanted)
        ]
        return sum(counted), len(counted)


class Population:
    def __init__(self) -> None:
        self.members: dict[str, Member] = {}
        self.offspring: dict[str, list[str]] = {}
        """Every child of a member, admitted or not, in order."""
        self.evaluations = 0
        """Results recorded, harness errors included."""
        self.code: dict[str, np.ndarray] = {}
        """Embeddings of members' code, where a selector needs them (novelty in code space)."""
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        # the counts as columns, for selectors that weigh every member at once
        self._columns = np.zeros((_COLUMNS, 64))

    def columns(self) -> dict[str, np.ndarray]:
        """Per member, in order: own successes and failures, clade successes and failures,
        tasks tried (harness errors included), usable and admitted (1.0 or 0.0), admitted
        children, dull (1.0: the interestingness judge found it not interesting). Read-only
        views."""
        view = self._columns[:, : len(self.ids)]
        view.flags.writeable = False
        return dict(zip(_COLUMN_NAMES, view, strict=True))

    @classmethod
    def from_archive(
        cls, archive: Archive, run_id: str, *, benchmark: str, model: str, tasks: set[str]
    ) -> Population:
        """A run's nodes with their results on `tasks` (those the search evaluates on) by the
        agent model; rejected children are unusable, admitted ones counted by their parents."""
        population = cls()
        nodes = [n for n in archive.nodes() if n.run_id == run_id]
        for node in nodes:  # oldest first: parents come before their children
            results = {
                e.task: (e.resolved if e.status.counted else None)
                for e in archive.evaluations(node.id)
                if (e.benchmark, e.model) == (benchmark, model) and e.task in tasks
            }
            usable = node.status is not NodeStatus.REJECTED
            population.add(Member(node.id, node.parent_id, usable=usable), results)
        for node in nodes:  # admitted last, so parents count their admitted children
            if node.status is NodeStatus.ADMITTED:
                population.admit(node.id)
        for event in archive.events_of(run_id, "judged"):
            if event.node_id in population.members:
                population.judged(event.node_id, event.payload["interesting"])
        return population

    def add(self, member: Member, results: dict[str, bool | None] | None = None) -> None:
        self.members[member.id] = member
        self.offspring.setdefault(member.id, [])
        if member.parent in self.members:
            self.offspring[member.parent].append(member.id)
        row = len(self.ids)
        self.ids.append(member.id)
        self.index[member.id] = row
        if row == self._columns.shape[1]:
            self._columns = np.concatenate([self._columns, np.zeros_like(self._columns)], axis=1)
        self._columns[:, row] = 0.0
        self._columns[_USABLE, row] = float(member.usable)
        self._columns[_ADMITTED, row] = float(member.admitted)
        self._columns[_CHILDREN, row] = member.children
        self._columns[_DULL, row] = float(member.interesting is False)
        for task, resolved in {**member.results, **(results or {})}.items():
            member.results.pop(task, None)
            self.record(member.id, task, resolved)

    def record(self, node: str, task: str, resolved: bool | None) -> None:
        """A result of `node` on `task`; its clade counts and its ancestors' follow."""
        member = self.members[node]
        previous = member.results.get(task)
        if task not in member.results:
            self._columns[_TRIED, self.index[node]] += 1
        member.results[task] = resolved
        self.evaluations += 1
        delta_s = int(resolved is True) - int(previous is True)
        delta_f = int(resolved is False) - int(previous is False)
        if not (delta_s or delta_f):
            return
        self._columns[_OWN, self.index[node]] += (delta_s, delta_f)
        rows = []
        ancestor: Member | None = member
        while ancestor is not None:  # the clade counts, never a node's own counts
            rows.append(self.index[ancestor.id])
            ancestor = self.members.get(ancestor.parent) if ancestor.parent else None
        self._columns[_CLADE, rows] += np.array([[delta_s], [delta_f]])

    def judged(self, node: str, interesting: bool) -> None:
        """The interestingness judge's verdict on a member."""
        self.members[node].interesting = interesting
        self._columns[_DULL, self.index[node]] = float(not interesting)

    def admit(self, node: str) -> None:
        member = self.members[node]
        if not member.admitted:
            member.admitted = True
            self._columns[_ADMITTED, self.index[node]] = 1.0
            if member.parent in self.members:
                self.members[member.parent].children += 1
                self._columns[_CHILDREN, self.index[member.parent]] += 1

    def root(self) -> Member | None:
        return next(iter(self.members.values()), None)

    def best(self) -> tuple[Member | None, tuple[int, int]]:
        """The admitted member with the highest score, then the most attempts, then the
        oldest; with its (resolved, attempted)."""
        c = self.columns()
        attempted = c["successes"] + c["failures"]
        (rows,) = np.nonzero((c["admitted"] > 0) & (attempted > 0))
        if not len(rows):
            return None, (0, 0)
        score = c["successes"][rows] / attempted[rows]
        top = rows[score == score.max()]
        best = self.members[self.ids[top[np.argmax(attempted[top])]]]  # first: the oldest
        return best, best.score()


_COLUMN_NAMES = (
    "successes", "failures", "clade_successes", "clade_failures", "tried", "usable", "admitted",
    "children", "dull",
)  # fmt: skip
_COLUMNS = len(_COLUMN_NAMES)
_OWN, _CLADE, _TRIED, _USABLE, _ADMITTED, _CHILDREN, _DULL = (
    slice(0, 2), slice(2, 4), 4, 5, 6, 7, 8
)  # fmt: skip


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
        evaluation_budget: int | None = None,
    ):
        self.population, self.stages, self.thresholds = population, stages, thresholds
        self.selector, self.mode, self.generation_size = selector, mode, generation_size
        self.rng = rng or random.Random()
        self.tasks = list(dict.fromkeys(t for stage in stages for t in stage))
        """Every task the search evaluates on, stage by stage."""
        self.evaluation_budget = evaluation_budget
        self.generation: list[str] = []  # parents of the current generation's expansions
        self._expansions_started = 0
        self.expansions_left: int | None = None
        """Expansions it may still start (None: no limit); evaluations owed go on without."""
        self._owed: dict[str, list[str]] = {}  # member -> tasks owed now (cached)
        # members that owe evaluations, and those done but not admitted yet, oldest first:
        # results only add, so a member that owes nothing never owes again
        self._owing: dict[str, None] = {}
        self._done: dict[str, None] = {}
        for member in population.members.values():
            self._sort(member)

    # -- what is owed ------------------------------------------------------------------------

    def owed(self, member: Member) -> list[str]:
        """The tasks of the member's current stage it has no result for (empty: done)."""
        if member.id not in self._owed:
            self._owed[member.id] = self._stage_tasks(member)
        return self._owed[member.id]

    def _stage_tasks(self, member: Member) -> list[str]:
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

    def _sort(self, member: Member) -> None:
        if not member.usable:
            return
        if self.owed(member):
            self._owing[member.id] = None
        elif not member.admitted:
            self._done[member.id] = None

    def to_admit(self, in_flight: Collection[Unit]) -> list[str]:
        """Members whose staged evaluation is complete and who are not admitted yet."""
        busy = {u.node for u in in_flight if u.kind == "evaluate"}
        members = self.population.members
        for node in [n for n in self._done if members[n].admitted]:
            del self._done[node]
        return [n for n in self._done if n not in busy]

    def candidates(self, in_flight: Collection[Unit]) -> Candidates:
        """Parents to choose from: admitted, scored, owing nothing and not being evaluated."""
        from dgm.selectors import Candidates

        population = self.population
        c = population.columns()
        attempted = c["successes"] + c["failures"]
        allowed = (c["admitted"] > 0) & (attempted > 0)
        busy = [u.node for u in in_flight if u.kind == "evaluate"]
        allowed[[population.index[n] for n in [*self._owing, *busy]]] = False
        (rows,) = np.nonzero(allowed)
        score = c["successes"][rows] / attempted[rows]
        return Candidates(population.ids, rows, score, c["children"][rows], self)

    def evaluations_used(self, in_flight: Collection[Unit]) -> int:
        """Evaluations finished and in flight: what the evaluation budget is charged."""
        return self.population.evaluations + sum(u.kind == "evaluate" for u in in_flight)

    # -- the next unit -----------------------------------------------------------------------

    def next_unit(self, in_flight: Collection[Unit]) -> Unit | None:
        """The unit a free worker should start now; None: nothing until a unit finishes (or,
        with nothing in flight, nothing left to do)."""
        unit = self.selector.next_unit(self, in_flight)
        if unit is not None and unit.kind == "expand" and self.expansions_left is not None:
            self.expansions_left -= 1
        return unit

    @property
    def may_expand(self) -> bool:
        return self.expansions_left is None or self.expansions_left > 0

    def owed_evaluation(self, in_flight: Collection[Unit]) -> Unit | None:
        """An evaluation some member owes (the oldest member first) that is not in flight."""
        for node in self._owing:
            for task in self.owed(self.population.members[node]):
                unit = Unit("evaluate", node, task)
                if unit not in in_flight:
                    return unit
        return None

    def parent_expansion(
        self, in_flight: Collection[Unit], pick: Callable[[Candidates, random.Random], str]
    ) -> Unit | None:
        """An expansion of a parent `pick` chooses from the candidates, at once (async) or
        for the whole generation when it starts (generational)."""
        if not self.may_expand:
            return None
        if self.mode == "async":
            candidates = self.candidates(in_flight)
            return Unit("expand", pick(candidates, self.rng)) if len(candidates) else None
        if self._expansions_started >= len(self.generation):
            if in_flight:
                return None  # the generation ends when all of it is done
            candidates = self.candidates(in_flight)
            if not len(candidates):
                return None
            self.generation = [pick(candidates, self.rng) for _ in range(self.generation_size)]
            self._expansions_started = 0
        self._expansions_started += 1
        return Unit("expand", self.generation[self._expansions_started - 1])

    # -- results -----------------------------------------------------------------------------

    def evaluated(self, node: str, task: str, resolved: bool | None) -> None:
        self.population.record(node, task, resolved)
        self._owed.pop(node, None)
        member = self.population.members[node]
        if not self.owed(member):  # done: it keeps its place in the queue until then
            self._owing.pop(node, None)
            self._sort(member)

    def expanded(self, parent: str, child: str | None, usable: bool) -> None:
        if child is not None:
            self.population.add(Member(child, parent, usable=usable))
            self._sort(self.population.members[child])

    def failed(self, unit: Unit) -> None:
        """A unit that raised: an evaluation counts as a harness error, so it is not offered
        again (an expansion may be)."""
        if unit.kind == "evaluate" and unit.task is not None:
            self.evaluated(unit.node, unit.task, None)

    def answer(self) -> str | None:
        """The run's answer, as its selector chooses it."""
        return self.selector.answer(self.population)
