"""Selectors against a synthetic landscape: no FM, no Docker, thousands of nodes in seconds.

Every node has a hidden logit l and a hidden productivity m. A task t has a difficulty d_t, and
the node resolves it with probability sigmoid(l - d_t): its true pass rate is the mean of that
over the tasks. An evaluation is one Bernoulli draw, replaced by a coin flip with probability
`noise`. A child's logit is its parent's plus `step * m_parent` plus Gaussian drift; a share
`broken` of children fail their own tests and are never evaluated. Productivity is

    m = c * tanh(l - l_root) + sqrt(1 - c^2) * e

where e is heritable noise (a child keeps `heritability` of its parent's) and c is the
landscape's correlation between how good a node is and how good its children get: -0.8 on a
mismatch landscape (HGM's metaproductivity-performance mismatch: a high score predicts poor
children), +0.8 aligned, 0 independent. Each node also has a synthetic code embedding: its
parent's plus Gaussian noise (`code_step`), normalised, for novelty in code space; and when
the selector asks for an interestingness judge, a synthetic one calls a child interesting when
it beats its parent's true pass rate, right with probability `judge_accuracy`.

A share `flagged` of children are held by the safety review for a person at the gate
`review_gate` (`admit`: no parent and no answer until approved; `promote`: no evaluation past
the first stage); the person decides `review_delay` units later and approves with probability
`approval`. The simulation counts every unit or answer that a held or rejected node got against
the gate (there must be none).

The real policy and selector run the search, one unit at a time, until the evaluation budget
is spent; the figure is the true pass rate of the node the selector answers with.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dgm.search import Evaluated, Expanded, Member, Population, Stage, make_search

CORRELATIONS = {"mismatch": -0.8, "aligned": 0.8, "independent": 0.0}


class Landscape(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["mismatch", "aligned", "independent"] = "mismatch"
    correlation: float | None = Field(None, ge=-1, le=1)
    """c: overrides the kind's correlation of productivity with quality."""
    tasks: int = Field(60, ge=1)
    difficulty_sd: float = Field(1.0, ge=0)
    """Spread of task difficulty, in logits (0: every task alike)."""
    noise: float = Field(0.05, ge=0, le=1)
    """Chance that an evaluation's result is a coin flip."""
    root_pass_rate: float = Field(0.2, gt=0, lt=1)
    step: float = Field(0.4, ge=0)
    """How far a parent's productivity moves its children, in logits."""
    drift_sd: float = Field(0.3, ge=0)
    heritability: float = Field(0.8, ge=0, le=1)
    broken: float = Field(0.1, ge=0, lt=1)
    """Share of children whose own tests fail."""
    judge_accuracy: float = Field(0.75, ge=0, le=1)
    """How often the synthetic interestingness judge is right that a child beats its parent."""
    code_dims: int = Field(16, ge=1)
    code_step: float = Field(0.3, ge=0)
    """How far a child's synthetic code embedding moves from its parent's."""
    flagged: float = Field(0.0, ge=0, le=1)
    """Share of children the safety review holds for a person."""
    review_gate: Literal["admit", "promote"] = "admit"
    review_delay: int = Field(20, ge=0)
    """Units run between a child being held and the person's decision."""
    approval: float = Field(0.5, ge=0, le=1)
    """Chance that the person approves a held child."""

    @property
    def c(self) -> float:
        return CORRELATIONS[self.kind] if self.correlation is None else self.correlation


class Simulation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    selector: str = "cmp"
    params: dict[str, Any] = {}
    evaluations: int = Field(600, ge=1)
    """The evaluation budget: the search stops when it is spent."""
    stages: list[int] = [10]
    """Staged evaluation: task counts of the stages before the rest (which is the last one)."""
    thresholds: list[float] = [0.4]
    """Score a node needs on each stage to go on to the next."""
    landscape: Landscape = Landscape()

    @model_validator(mode="after")
    def _known_selector(self) -> Simulation:
        make_search(self.selector, self.params, Population(), [])  # its ValueError says what
        return self


@dataclass
class Result:
    answer: float
    """True pass rate of the selector's answer."""
    found: float
    """Best true pass rate of any node the search made."""
    correlation: float
    """Pearson r of each scored node's score against its clade's best true pass rate."""
    nodes: int
    evaluations: int
    held: int = 0
    """Children held for a person."""
    approved_parents: int = 0
    """Expansions of a child after a person approved it."""
    gate_breaches: int = 0
    """Units or an answer a held or rejected child got against its gate (must be 0)."""


@dataclass
class _Hidden:
    logit: float
    heritable: float
    rate: float


def simulate(sim: Simulation, seed: int) -> Result:
    land = sim.landscape
    rng = random.Random(seed)
    draws = np.random.default_rng(seed)
    difficulty = draws.normal(0.0, land.difficulty_sd, land.tasks)
    tasks = [f"t{i}" for i in range(land.tasks)]
    cuts = np.cumsum(sim.stages).tolist()
    parts = [tasks[a:b] for a, b in zip([0, *cuts], [*cuts, land.tasks], strict=True) if b > a]
    thresholds = [*sim.thresholds, 0.0][: len(parts)]
    stages = [Stage(part, threshold) for part, threshold in zip(parts, thresholds, strict=True)]
    # the root's logit is set so that its true pass rate is the one asked for
    root_logit = _logit_for(land.root_pass_rate, difficulty)

    hidden = {"n0": _Hidden(root_logit, float(draws.normal()), land.root_pass_rate)}
    population = Population()
    population.add(Member("n0", None))
    population.code["n0"] = _unit(draws.normal(size=land.code_dims))
    policy = make_search(
        sim.selector, sim.params, population, stages, rng=rng, evaluation_budget=sim.evaluations
    )
    c = land.c
    review = _Review(land, rng, stages[0].tasks)
    for step in range(50 * sim.evaluations):  # a selector that only expands stops here
        if population.evaluations >= sim.evaluations:
            break
        review.decide(policy, step)
        unit = policy.ask()
        if unit is None and review.due:  # everything left waits for a person
            review.decide(policy, min(review.due.values()))
            unit = policy.ask()
        if unit is None:
            break
        review.check(unit)
        parent = hidden[unit.node]
        if unit.kind == "expand":
            productivity = c * math.tanh(parent.logit - root_logit)
            productivity += math.sqrt(1 - c * c) * parent.heritable
            logit = parent.logit + land.step * productivity + draws.normal(0, land.drift_sd)
            heritable = land.heritability * parent.heritable + math.sqrt(
                1 - land.heritability**2
            ) * float(draws.normal())
            child = f"n{len(hidden)}"
            hidden[child] = _Hidden(logit, heritable, _pass_rate(logit, difficulty))
            code = population.code[unit.node] + draws.normal(0, land.code_step, land.code_dims)
            usable = rng.random() >= land.broken
            interesting = None
            if "verdicts" in policy.needs:
                better = hidden[child].rate > parent.rate
                interesting = better if rng.random() < land.judge_accuracy else not better
            held = review.hold(child, step) if usable else frozenset()
            policy.tell(unit, Expanded(child, usable, interesting, _unit(code), held))
        else:
            task = tasks.index(unit.task or "")
            if rng.random() < land.noise:
                resolved = rng.random() < 0.5
            else:
                resolved = rng.random() < 1 / (1 + math.exp(difficulty[task] - parent.logit))
            policy.tell(unit, Evaluated(resolved))
    answer = policy.answer()
    if answer is not None and (answer in review.rejected or land.review_gate == "admit"):
        review.breaches += review.blocks(answer)
    usable = [m.id for m in population.members.values() if m.usable]
    return Result(
        answer=hidden[answer].rate if answer else 0.0,
        found=max(hidden[n].rate for n in usable),
        correlation=_score_against_clade_best(population, hidden),
        nodes=len(population.members),
        evaluations=population.evaluations,
        held=review.held,
        approved_parents=review.approved_parents,
        gate_breaches=review.breaches,
    )


class _Review:
    """The synthetic safety review and the person behind it, and the check that the search
    keeps to the gate."""

    def __init__(self, land: Landscape, rng: random.Random, first_stage: list[str]):
        self.land, self.rng, self.first_stage = land, rng, set(first_stage)
        self.due: dict[str, int] = {}  # held child -> step its decision arrives
        self.rejected: set[str] = set()
        self.approved: set[str] = set()
        self.held = self.approved_parents = self.breaches = 0

    def hold(self, child: str, step: int) -> frozenset[str]:
        if self.rng.random() >= self.land.flagged:
            return frozenset()
        self.held += 1
        self.due[child] = step + self.land.review_delay
        return frozenset({self.land.review_gate})

    def decide(self, policy: Any, step: int) -> None:
        for child in [n for n, due in self.due.items() if due <= step]:
            del self.due[child]
            approved = self.rng.random() < self.land.approval
            (self.approved if approved else self.rejected).add(child)
            policy.release(child, approved)

    def blocks(self, node: str) -> bool:
        """Whether the node may not be a parent nor the answer under an `admit` gate."""
        return node in self.due or node in self.rejected

    def check(self, unit: Any) -> None:
        """Count a unit the gate forbids: any on a rejected node, an expansion of one held at
        `admit`, an evaluation past the first stage of one held at `promote`."""
        held = unit.node in self.due
        if unit.node in self.rejected:
            self.breaches += 1
        elif unit.kind == "expand":
            self.breaches += held and self.land.review_gate == "admit"
            self.approved_parents += unit.node in self.approved
        elif held and self.land.review_gate == "promote":
            self.breaches += unit.task not in self.first_stage


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / (np.linalg.norm(vector) or 1.0)


def _pass_rate(logit: float, difficulty: np.ndarray) -> float:
    """A node's true pass rate: its mean chance to resolve each task."""
    return float(np.mean(1 / (1 + np.exp(difficulty - logit))))


def _logit_for(pass_rate: float, difficulty: np.ndarray) -> float:
    """The logit whose mean resolve probability over the tasks is `pass_rate` (bisection)."""
    low, high = -20.0, 20.0
    for _ in range(60):
        mid = (low + high) / 2
        if _pass_rate(mid, difficulty) < pass_rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _score_against_clade_best(population: Population, hidden: dict[str, _Hidden]) -> float:
    """HGM's Table 1 measure: how well a node's own score predicts the best true pass rate
    in its clade (itself and its descendants)."""
    best = {n: (hidden[n].rate if population.members[n].usable else 0.0) for n in population.ids}
    for node in reversed(population.ids):  # children come after their parents
        parent = population.members[node].parent
        if parent is not None:
            best[parent] = max(best[parent], best[node])
    c = population.columns()
    attempted = c["successes"] + c["failures"]
    (scored,) = np.nonzero(attempted)
    if len(scored) < 3:
        return float("nan")
    scores = c["successes"][scored] / attempted[scored]
    clade = [best[population.ids[row]] for row in scored]
    if np.std(scores) == 0 or np.std(clade) == 0:
        return float("nan")
    return float(np.corrcoef(scores, clade)[0, 1])


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and the normal 95% interval of the mean (NaNs left out)."""
    kept = np.array([v for v in values if not math.isnan(v)])
    if not len(kept):
        return (math.nan, math.nan, math.nan)
    mean = float(kept.mean())
    half = 1.96 * float(kept.std(ddof=1)) / math.sqrt(len(kept)) if len(kept) > 1 else 0.0
    return mean, mean - half, mean + half
