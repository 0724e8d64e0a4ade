"""The members a search has grown, their results, and the counts selectors weigh them by.

Counts are kept as numpy columns (`columns()`), updated as each result arrives, so a selector
weighs 10,000 members in well under a millisecond: each member's own successes and failures
(n_s, n_f) and its clade's (N_s, N_f: the member and all its descendants), never mixed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from dgm.search.units import Evaluated


@dataclass(eq=False)
class Member:
    id: str
    parent: str | None
    usable: bool = True
    """It may be evaluated and chosen: its own tests passed, and it was not turned away."""
    admitted: bool = False
    decided: bool = False
    """Its staged evaluation is complete and the search took its decision (admitted or not)."""
    results: dict[str, Evaluated] = field(default_factory=dict)
    children: int = 0
    """Children admitted to the archive."""
    interesting: bool | None = None
    """The interestingness judge's verdict, where one was asked for."""
    held: frozenset[str] = frozenset()
    """Gates at which the safety policy holds it for a person: `admit` (it is not admitted,
    so never a parent, until then), `promote` (no evaluation past its first stage)."""

    def score(self, tasks: Iterable[str] | None = None) -> tuple[int, int]:
        """(resolved, attempted) over its counted results, or over those of `tasks`."""
        wanted = None if tasks is None else set(tasks)
        counted = [
            r.resolved
            for t, r in self.results.items()
            if r.resolved is not None and (wanted is None or t in wanted)
        ]
        return sum(counted), len(counted)

    def patched(self, tasks: Iterable[str]) -> bool:
        """Did it leave a non-empty patch on any of `tasks`?"""
        return any(self.results[t].patched for t in tasks if t in self.results)


class Population:
    def __init__(self) -> None:
        self.members: dict[str, Member] = {}
        self.offspring: dict[str, list[str]] = {}
        """Every child of a member, admitted or not, in order."""
        self.expansions: dict[str, int] = {}
        """Expansions of each member, those that made no child included."""
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

    def add(self, member: Member, results: dict[str, Evaluated] | None = None) -> None:
        self.members[member.id] = member
        self.offspring.setdefault(member.id, [])
        self.expansions.setdefault(member.id, 0)
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
        for task, result in {**member.results, **(results or {})}.items():
            member.results.pop(task, None)
            self.record(member.id, task, result)

    def record(self, node: str, task: str, result: Evaluated) -> None:
        """A result of `node` on `task`; its clade counts and its ancestors' follow."""
        member = self.members[node]
        previous = member.results.get(task)
        if previous is None:
            self._columns[_TRIED, self.index[node]] += 1
        member.results[task] = result
        self.evaluations += 1
        before = previous.resolved if previous else None
        delta_s = int(result.resolved is True) - int(before is True)
        delta_f = int(result.resolved is False) - int(before is False)
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

    def decide(self, node: str, admitted: bool) -> None:
        """Admit a member to the archive (its parent counts it), or turn it away for good."""
        member = self.members[node]
        member.decided = True
        if not admitted:
            member.usable = False
            self._columns[_USABLE, self.index[node]] = 0.0
        elif not member.admitted:
            member.admitted = True
            self._columns[_ADMITTED, self.index[node]] = 1.0
            if member.parent in self.members:
                self.members[member.parent].children += 1
                self._columns[_CHILDREN, self.index[member.parent]] += 1

    def revoke(self, node: str) -> None:
        """Turn an admitted member away after all (a person rejected it)."""
        member = self.members[node]
        if member.admitted:
            member.admitted = False
            self._columns[_ADMITTED, self.index[node]] = 0.0
            if member.parent in self.members:
                self.members[member.parent].children -= 1
                self._columns[_CHILDREN, self.index[member.parent]] -= 1
        self.decide(node, False)

    def root(self) -> Member | None:
        return next(iter(self.members.values()), None)

    def best(self) -> Member | None:
        """The admitted member with the highest score, then the most attempts, then the
        oldest."""
        c = self.columns()
        attempted = c["successes"] + c["failures"]
        (rows,) = np.nonzero((c["admitted"] > 0) & (attempted > 0))
        if not len(rows):
            return None
        score = c["successes"][rows] / attempted[rows]
        top = rows[score == score.max()]
        return self.members[self.ids[top[np.argmax(attempted[top])]]]  # the first: oldest


_COLUMN_NAMES = (
    "successes", "failures", "clade_successes", "clade_failures", "tried", "usable", "admitted",
    "children", "dull",
)  # fmt: skip
_COLUMNS = len(_COLUMN_NAMES)
_OWN, _CLADE, _TRIED, _USABLE, _ADMITTED, _CHILDREN, _DULL = (
    slice(0, 2), slice(2, 4), 4, 5, 6, 7, 8
)  # fmt: skip
