"""HGM's selector (Algorithm 1 of the Huxley-Gödel Machine paper): clade metaproductivity.

n_s, n_f are a node's own successes and failures; the clade counts N_s, N_f sum them over the
node and all its descendants (kept apart from the node's own counts, which they never change).

- Selection: expand when N^alpha >= the number of nodes (expansions in flight counted), where
  N is the number of evaluations (in flight counted); otherwise evaluate.
- Expansion: Thompson sampling from Beta(tau (1 + N_s), tau (1 + N_f)) over the nodes; the
  winner is expanded.
- Evaluation: Thompson sampling from Beta(tau (1 + n_s), tau (1 + n_f)) over the nodes with
  untried tasks; the winner is run on one untried task.
- tau = B / b: the evaluation budget over what is left of it (1 without a budget), so the
  sampling sharpens as the budget runs out.
- The root is expanded `initial_expansions` times first.
- The answer: the node with the highest epsilon-percentile of Beta(1 + n_s, 1 + n_f).

Self-modification learns from a node's evaluations, so a node is expanded only once it has a
result: the root is evaluated on one task before its first expansion.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np

from dgm.policy import Unit

if TYPE_CHECKING:
    from dgm.policy import EvolutionPolicy, Population


class CMP:
    name = "cmp"
    needs: frozenset[str] = frozenset()

    def __init__(
        self,
        alpha: float = 0.6,
        initial_expansions: int = 5,
        epsilon: float = 0.01,
        tau: float | None = None,
    ):
        """`tau`: a fixed temperature instead of B / b."""
        self.alpha, self.initial_expansions = alpha, initial_expansions
        self.epsilon, self.fixed_tau = epsilon, tau
        self._draws: np.random.Generator | None = None

    def _thompson(self, a: np.ndarray, b: np.ndarray, rng: random.Random) -> int:
        """The index of the largest of one draw from each Beta(a_i, b_i)."""
        if self._draws is None:  # seeded by the run's generator: choices follow its seed
            self._draws = np.random.default_rng(rng.getrandbits(64))
        return int(np.argmax(self._draws.beta(a, b)))

    def tau(self, policy: EvolutionPolicy, in_flight: Collection[Unit]) -> float:
        if self.fixed_tau is not None:
            return self.fixed_tau
        total = policy.evaluation_budget
        if not total:
            return 1.0
        left = max(total - policy.evaluations_used(in_flight), 1)
        return total / left

    def next_unit(self, policy: EvolutionPolicy, in_flight: Collection[Unit]) -> Unit | None:
        population = policy.population
        root = population.root()
        if root is None:
            return None
        if not root.results:
            return self._evaluation(policy, in_flight, root_only=True)
        expanding = [u.node for u in in_flight if u.kind == "expand"]
        started = len(population.offspring[root.id]) + expanding.count(root.id)
        if policy.may_expand and started < self.initial_expansions:
            return Unit("expand", root.id)
        evaluations = policy.evaluations_used(in_flight)
        nodes = len(population.members) + len(expanding)
        if policy.may_expand and evaluations**self.alpha >= nodes:
            return self._expansion(policy, in_flight) or self._evaluation(policy, in_flight)
        unit = self._evaluation(policy, in_flight)
        if unit is None and policy.may_expand:  # nothing left to evaluate
            unit = self._expansion(policy, in_flight)
        return unit

    def _expansion(self, policy: EvolutionPolicy, in_flight: Collection[Unit]) -> Unit | None:
        """Thompson sampling over clades: Beta(tau (1 + N_s), tau (1 + N_f))."""
        c = policy.population.columns()
        (rows,) = np.nonzero((c["usable"] > 0) & (c["tried"] > 0))
        if not len(rows):
            return None
        tau = self.tau(policy, in_flight)
        s, f = c["clade_successes"][rows], c["clade_failures"][rows]
        winner = rows[self._thompson(tau * (1 + s), tau * (1 + f), policy.rng)]
        return Unit("expand", policy.population.ids[winner])

    def _evaluation(
        self, policy: EvolutionPolicy, in_flight: Collection[Unit], *, root_only: bool = False
    ) -> Unit | None:
        """Thompson sampling over nodes with untried tasks: Beta(tau (1 + n_s), tau (1 + n_f))."""
        population = policy.population
        busy: dict[str, set[str]] = {}
        for u in in_flight:
            if u.kind == "evaluate" and u.task is not None:
                busy.setdefault(u.node, set()).add(u.task)
        c = population.columns()
        taken = c["tried"].copy()
        for node, tasks in busy.items():
            taken[population.index[node]] += len(tasks)
        open_ = (c["usable"] > 0) & (taken < len(policy.tasks))
        if root_only:
            open_[1:] = False
        (rows,) = np.nonzero(open_)
        if not len(rows):
            return None
        tau = self.tau(policy, in_flight)
        s, f = c["successes"][rows], c["failures"][rows]
        winner = population.members[
            population.ids[rows[self._thompson(tau * (1 + s), tau * (1 + f), policy.rng)]]
        ]
        skip = busy.get(winner.id, set())
        untried = [t for t in policy.tasks if t not in winner.results and t not in skip]
        return Unit("evaluate", winner.id, policy.rng.choice(untried))

    def answer(self, population: Population) -> str | None:
        """The highest epsilon-percentile of Beta(1 + n_s, 1 + n_f)."""
        from scipy.special import betaincinv  # importing scipy.special costs 0.7 s

        c = population.columns()
        (rows,) = np.nonzero(c["successes"] + c["failures"])
        if not len(rows):
            return None
        percentile = betaincinv(1 + c["successes"][rows], 1 + c["failures"][rows], self.epsilon)
        return population.ids[rows[int(np.argmax(percentile))]]
