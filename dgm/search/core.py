"""What every search policy shares: the population, staged evaluation, admission, the units
it asked for and has not been told about yet, and `tell`.

Staged evaluation: a member owes its first stage's tasks; once it has a result on all of
them it owes the next stage's only if its score reached the stage's threshold (on the stage's
tasks; a `dgm` threshold is DGM's rule for going on to the full evaluation: on every task so
far, at least max(0.4, the second-best score among the seed and the members already fully
evaluated)). A member that owes nothing and has nothing in flight is decided: admitted to the
archive, or, under DGM's rule that a child must have "compiled" (made at least one non-empty
patch on its first stage), turned away. The seed is always admitted.

The safety policy can hold a child for a person at two gates: `promote` (no evaluation past
its first stage) and `admit` (not admitted, so never a parent). Such a member is decided
`None` (it waits) and stays so until `release` brings the person's decision.

A policy holds nothing the archive does not: a resumed run rebuilds it from the archive.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from dgm.search.population import Member, Population
from dgm.search.units import Decision, Evaluated, Expanded, Outcome, Unit

# DGM's full evaluation: "at least 0.4" (get_full_eval_threshold in jennyzzt/dgm DGM_outer.py)
DGM_FULL_EVAL_FLOOR = 0.4


@dataclass(frozen=True)
class Stage:
    tasks: list[str]
    threshold: float | Literal["dgm"] = 0.0
    """The score (resolved / attempted) to reach on this stage for the next one to be owed."""


class Search:
    name = "search"
    needs: frozenset[str] = frozenset()
    """What `tell` must bring beyond results: `code` (`Expanded.code`), `verdicts`
    (`Expanded.interesting`)."""
    compiled = False
    """Turn away a child that made no non-empty patch on its first stage (DGM's rule)."""
    answer_rule = "the admitted node with the best score on the searched tasks"
    """How `answer()` chooses, in words (ties: more tasks, then the oldest)."""

    def __init__(
        self,
        population: Population,
        stages: Sequence[Stage],
        *,
        rng: random.Random | None = None,
        evaluation_budget: int | None = None,
    ):
        self.population, self.stages = population, list(stages)
        self.rng = rng or random.Random()
        self.tasks = list(dict.fromkeys(t for stage in self.stages for t in stage.tasks))
        """Every task the search evaluates on, stage by stage."""
        self.evaluation_budget = evaluation_budget
        self.expansions_left: int | None = None
        """Expansions it may still ask for (None: no limit); owed evaluations go on without."""
        self.in_flight: list[Unit] = []
        """Units asked for and not told about yet (two expansions of one parent are two)."""
        self._owed: dict[str, list[str]] = {}  # member -> tasks owed now (cached)
        # members that owe evaluations, and those done but undecided, oldest first: results
        # only add, so a member that owes nothing never owes again
        self._owing: dict[str, None] = {}
        self._done: dict[str, None] = {}
        self.waiting: dict[str, str] = {}
        """Members held for a person whose evaluation is done, and the gate each waits at."""
        self.gated = {m.id for m in population.members.values() if m.held}
        """Members the safety policy holds at some gate."""
        for member in population.members.values():
            self._sort(member)

    # -- the protocol -------------------------------------------------------------------------

    def ask(self) -> Unit | None:
        """The unit to start now; None: nothing until a unit in flight is told about (or, with
        nothing in flight, nothing left to do)."""
        unit = self._next()
        if unit is not None:
            self.in_flight.append(unit)
            if unit.kind == "expand" and self.expansions_left is not None:
                self.expansions_left -= 1
        return unit

    def tell(self, unit: Unit, outcome: Outcome | None) -> list[Decision]:
        """What a unit brought back (None: it failed, which for an evaluation counts as a
        harness error, so it is not asked for again); the decisions that follow."""
        if unit in self.in_flight:
            self.in_flight.remove(unit)
        if unit.kind == "evaluate" and unit.task is not None:
            result = outcome if isinstance(outcome, Evaluated) else Evaluated(None, False)
            self.population.record(unit.node, unit.task, result)
            self._owed.pop(unit.node, None)
            member = self.population.members[unit.node]
            if not self.owed(member):  # done: it kept its place in the queue until now
                self._owing.pop(unit.node, None)
                self._sort(member)
        elif unit.kind == "expand":
            self.population.expansions[unit.node] += 1
            if isinstance(outcome, Expanded) and outcome.child is not None:
                self._grown(unit.node, outcome)
        return self.decisions()

    def answer(self) -> str | None:
        """The node the run reports (None: nothing scored yet)."""
        best = self.population.best()
        return best.id if best else None

    def decisions(self) -> list[Decision]:
        """Members whose staged evaluation is complete, with nothing in flight, decided now."""
        busy = {u.node for u in self.in_flight if u.kind == "evaluate"}
        decided = []
        for node in [n for n in self._done if n not in busy]:
            del self._done[node]
            member = self.population.members[node]
            if member.decided:
                continue
            first = self.stages[0].tasks if self.stages else []
            gate = self._held_at(member)
            if self.compiled and member.parent is not None and not member.patched(first):
                decision = Decision(node, False, "no non-empty patch on its first stage")
            elif gate is not None:
                self.waiting[node] = gate
                decided.append(Decision(node, None, f"waits for a person at {gate}"))
                continue
            else:
                decision = Decision(node, True, "staged evaluation complete")
            self.population.decide(node, bool(decision.admitted))
            decided.append(decision)
        return decided

    def release(self, node: str, approved: bool) -> list[Decision]:
        """A person's decision on a member's code: an approval lifts every gate that holds
        it; a rejection turns it away for good (an admitted one too)."""
        member = self.population.members.get(node)
        if member is None:
            return []
        member.held = frozenset()
        self.gated.discard(node)
        self.waiting.pop(node, None)
        self._owed.pop(node, None)
        if not approved:
            self._owing.pop(node, None)
            self._done.pop(node, None)
            self.population.revoke(node)
            return [Decision(node, False, "rejected by a person")]
        if not member.decided:
            self._sort(member)
        return self.decisions()

    def _held_at(self, member: Member) -> str | None:
        """The gate a member whose evaluation is done waits at: `promote` if it would go on
        to a later stage, else `admit`."""
        if "promote" in member.held and self._stage_tasks(member, gated=False):
            return "promote"
        return "admit" if "admit" in member.held else None

    # -- for policies -------------------------------------------------------------------------

    def _next(self) -> Unit | None:
        raise NotImplementedError

    @property
    def may_expand(self) -> bool:
        return self.expansions_left is None or self.expansions_left > 0

    def evaluations_used(self) -> int:
        """Evaluations finished and in flight: what the evaluation budget is charged."""
        return self.population.evaluations + sum(u.kind == "evaluate" for u in self.in_flight)

    def owed(self, member: Member) -> list[str]:
        """The tasks of the member's current stage it has no result for (empty: done)."""
        if member.id not in self._owed:
            self._owed[member.id] = self._stage_tasks(member)
        return self._owed[member.id]

    def owed_evaluation(self) -> Unit | None:
        """An evaluation some member owes (the oldest member first) that is not in flight."""
        for node in self._owing:
            for task in self.owed(self.population.members[node]):
                unit = Unit("evaluate", node, task)
                if unit not in self.in_flight:
                    return unit
        return None

    def _grown(self, parent: str, outcome: Expanded) -> None:
        child = Member(outcome.child or "", parent, usable=outcome.usable, held=outcome.held)
        self.population.add(child)
        if child.held:
            self.gated.add(child.id)
        if outcome.code is not None:
            self.population.code[child.id] = outcome.code
        if outcome.interesting is not None:
            self.population.judged(child.id, outcome.interesting)
        self._sort(child)

    def _stage_tasks(self, member: Member, *, gated: bool = True) -> list[str]:
        if not member.usable:
            return []
        so_far: list[str] = []
        for stage in self.stages:
            if missing := [t for t in stage.tasks if t not in member.results]:
                return missing
            so_far += stage.tasks
            if not self._goes_on(member, stage, so_far):
                return []
            if gated and "promote" in member.held:
                return []  # the later stages wait for a person
        return []

    def _goes_on(self, member: Member, stage: Stage, so_far: list[str]) -> bool:
        if stage.threshold == "dgm":
            resolved, attempted = member.score(so_far)
            return bool(attempted) and resolved / attempted >= self._full_eval_threshold()
        resolved, attempted = member.score(stage.tasks)
        return bool(attempted) and resolved / attempted >= stage.threshold

    def _full_eval_threshold(self) -> float:
        """max(0.4, the second-best score among the seed and the members evaluated on every
        task), as DGM's get_full_eval_threshold has it."""
        scores = []
        for member in self.population.members.values():
            if member.parent is None or all(t in member.results for t in self.tasks):
                resolved, attempted = member.score(self.tasks)
                scores.append(resolved / attempted if attempted else 0.0)
        scores.sort(reverse=True)
        second = scores[1] if len(scores) > 1 else (scores[0] if scores else 0.0)
        return max(second, DGM_FULL_EVAL_FLOOR)

    def _sort(self, member: Member) -> None:
        if not member.usable:
            return
        if self.owed(member):  # the seed is admitted when it is made, and owes all the same
            self._owing[member.id] = None
        elif not member.decided:
            self._done[member.id] = None
