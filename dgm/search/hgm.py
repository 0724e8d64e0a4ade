"""HGM's search (metauto-ai/HGM `hgm.py`; Algorithm 1 of the Huxley-Gödel Machine paper):
clade metaproductivity.

n_s, n_f are a node's own successes and failures; the clade counts N_s, N_f sum them over the
node and all its descendants (kept apart from the node's own counts, which they never change).

1. The root (the initial agent) is evaluated on its staged tasks first (HGM's initialize_run
   evaluates it on every task before searching).
2. It is then expanded min(`initial_expansions`, floor(workers^alpha)) times (HGM:
   `range(len(nodes) - 1, min(5, int(max_workers ** alpha)))`), and nothing else starts until
   those expansions are done.
3. Then each free worker gets: an expansion when n^alpha >= the nodes without the root plus
   the expansions in flight (HGM: `n_task_evals ** alpha >= len(nodes) - 1 + n_pending_expands`),
   where n counts the task evaluations of nodes other than the root, in flight included;
   otherwise an evaluation.
   - Expansion: Thompson sampling from Beta(tau (1 + N_s), tau (1 + N_f)) over the nodes with
     at least one success (HGM: `mean_utility > 0`; while there is none, over the nodes with
     a result).
   - Evaluation: Thompson sampling from Beta(tau (1 + n_s), tau (1 + n_f)) over the nodes with
     untried tasks (in flight counted as tried); the winner is run on one untried task, drawn
     at random (HGM's default `eval_random_level: 1.0`).
   - tau = B / (B - b): the evaluation budget over what is left of it (1 without a budget),
     so the sampling sharpens as the budget runs out (HGM's `cool_down` with beta 1).
4. The answer: the node with the highest epsilon-percentile of Beta(1 + n_s, 1 + n_f).

A child is a node once it passed its own tests (HGM: a child whose self-modification failed
is no node); it is admitted at once.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from dgm.search.core import Search, Stage
from dgm.search.population import Member, Population
from dgm.search.units import Unit

TAU_AT_THE_END = 10_000.0  # HGM's factor once the budget is spent


class CMP(Search):
    name = "cmp"

    def __init__(
        self,
        population: Population,
        stages: Sequence[Stage],
        *,
        alpha: float = 0.6,
        initial_expansions: int = 5,
        epsilon: float = 0.01,
        tau: float | None = None,
        workers: int | None = None,
        rng: random.Random | None = None,
        evaluation_budget: int | None = None,
    ):
        """`tau`: a fixed temperature instead of B / (B - b); `workers`: how many units run at
        once, which bounds the initial expansions."""
        self.alpha, self.epsilon, self.fixed_tau = alpha, epsilon, tau
        self.initial_expansions = initial_expansions
        if workers is not None:
            self.initial_expansions = min(initial_expansions, int(workers**alpha))
        super().__init__(population, stages, rng=rng, evaluation_budget=evaluation_budget)
        self._draws: np.random.Generator | None = None

    def owed(self, member: Member) -> list[str]:
        # only the root follows staged evaluation; every other node is evaluated a task at a
        # time, as Thompson sampling chooses
        return super().owed(member) if member.parent is None else []

    def _held_at(self, member: Member) -> str | None:
        # no node but the root has stages: `promote` bounds its evaluations (`_tasks_of`),
        # it does not hold its admission
        return "admit" if "admit" in member.held else None

    def _next(self) -> Unit | None:
        root = self.population.root()
        if root is None:
            return None
        if self.owed(root):
            return self.owed_evaluation()  # None while its last tasks are in flight
        started = self.population.expansions[root.id] + self._expanding(root.id)
        if started < self.initial_expansions:
            return Unit("expand", root.id) if self.may_expand else self._evaluation()
        if self._expanding(root.id) and started <= self.initial_expansions:
            return None  # HGM waits for its initial expansions before it samples
        nodes = sum(m.usable for m in self.population.members.values()) - 1
        nodes += sum(u.kind == "expand" for u in self.in_flight)
        if self.may_expand and self.task_evaluations() ** self.alpha >= nodes:
            return self._expansion() or self._evaluation()
        unit = self._evaluation()
        if unit is None and self.may_expand:  # nothing left to evaluate
            unit = self._expansion()
        return unit

    def task_evaluations(self) -> int:
        """HGM's n_task_evals: evaluations of nodes other than the root, in flight counted."""
        root = self.population.ids[0]
        done = self.population.evaluations - len(self.population.members[root].results)
        return done + sum(u.kind == "evaluate" and u.node != root for u in self.in_flight)

    def tau(self) -> float:
        if self.fixed_tau is not None:
            return self.fixed_tau
        total = self.evaluation_budget
        if not total:
            return 1.0
        left = total - self.evaluations_used()
        return total / left if left > 0 else TAU_AT_THE_END

    def _expanding(self, node: str) -> int:
        return sum(u == Unit("expand", node) for u in self.in_flight)

    def _thompson(self, a: np.ndarray, b: np.ndarray) -> int:
        """The index of the largest of one draw from each Beta(a_i, b_i)."""
        if self._draws is None:  # seeded by the run's generator: choices follow its seed
            self._draws = np.random.default_rng(self.rng.getrandbits(64))
        return int(np.argmax(self._draws.beta(a, b)))

    def _expansion(self) -> Unit | None:
        """Thompson sampling over clades, Beta(tau (1 + N_s), tau (1 + N_f)), among the nodes
        with at least one success; while none has one (HGM's code has no answer then), among
        the nodes with a result."""
        c = self.population.columns()
        admitted = c["admitted"] > 0  # a node held for a person at `admit` is no parent yet
        (rows,) = np.nonzero(admitted & (c["successes"] > 0))
        if not len(rows):
            (rows,) = np.nonzero(admitted & (c["successes"] + c["failures"] > 0))
        if not len(rows):
            return None
        tau = self.tau()
        s, f = c["clade_successes"][rows], c["clade_failures"][rows]
        winner = rows[self._thompson(tau * (1 + s), tau * (1 + f))]
        return Unit("expand", self.population.ids[winner])

    def _evaluation(self) -> Unit | None:
        """Thompson sampling over nodes with untried tasks: Beta(tau (1 + n_s), tau (1 + n_f))."""
        population = self.population
        busy: dict[str, set[str]] = {}
        for u in self.in_flight:
            if u.kind == "evaluate" and u.task is not None:
                busy.setdefault(u.node, set()).add(u.task)
        c = population.columns()
        taken = c["tried"].copy()
        for node, tasks in busy.items():
            taken[population.index[node]] += len(tasks)
        allowed = (c["usable"] > 0) & (taken < len(self.tasks))
        for node in self._held_at_promote():  # held for a person: its first stage only
            skip = busy.get(node, set())
            untried = [t for t in self._tasks_of(node) if t not in skip]
            allowed[population.index[node]] &= bool(untried)
        (rows,) = np.nonzero(allowed)
        if not len(rows):
            return None
        tau = self.tau()
        s, f = c["successes"][rows], c["failures"][rows]
        winner = population.members[
            population.ids[rows[self._thompson(tau * (1 + s), tau * (1 + f))]]
        ]
        skip = busy.get(winner.id, set())
        untried = [t for t in self._tasks_of(winner.id) if t not in skip]
        return Unit("evaluate", winner.id, self.rng.choice(untried))

    def _held_at_promote(self) -> list[str]:
        members = self.population.members
        return [n for n in self.gated if "promote" in members[n].held]

    def _tasks_of(self, node: str) -> list[str]:
        """The tasks a node may still be evaluated on: all, or while a person has not
        decided at `promote`, those of the first stage."""
        member = self.population.members[node]
        tasks = self.tasks
        if "promote" in member.held and self.stages:
            tasks = self.stages[0].tasks
        return [t for t in tasks if t not in member.results]

    @property
    def answer_rule(self) -> str:
        return f"HGM's best belief: the highest {self.epsilon:g}-quantile of Beta(1 + n_s, 1 + n_f)"

    def answer(self) -> str | None:
        """The highest epsilon-percentile of Beta(1 + n_s, 1 + n_f)."""
        return best_belief(self.population, self.epsilon)


def best_belief(population: Population, epsilon: float) -> str | None:
    """The node with the highest epsilon-percentile of Beta(1 + n_s, 1 + n_f)."""
    from scipy.special import betaincinv  # importing scipy.special costs 0.7 s

    c = population.columns()
    (rows,) = np.nonzero((c["successes"] + c["failures"] > 0) & (c["admitted"] > 0))
    if not len(rows):
        return None
    percentile = betaincinv(1 + c["successes"][rows], 1 + c["failures"][rows], epsilon)
    return population.ids[rows[int(np.argmax(percentile))]]
