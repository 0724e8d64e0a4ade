"""Doing a search's units for a run: `evaluate` a node on a task (recorded under the task's
stage), or `expand` a node into a child, then review, embed and judge the child where the
search needs it. What each brings back is the outcome the search is told."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from archive import Archive
from archive.records import NodeStatus
from benchmarks.base import Benchmark
from dgm.config import RunConfig
from dgm.embeddings import MiniLM, code_vector
from dgm.evaluate import Key, known
from dgm.executors import Executor
from dgm.expand import ExpansionSettings, Plan, plan, record
from dgm.judge import judge
from dgm.review.service import HELD_GATES, gate_state, review_node, reviewers
from dgm.run_population import evaluated
from dgm.search import Expanded, Outcome, Population, Unit
from dgm.unit_work import EvaluateWork, ExpandWork
from sandbox.base import SandboxSettings


class _Tasks:
    """The benchmark as self-modification's TaskSource."""

    def __init__(self, bench: Benchmark):
        self.bench = bench

    def statement(self, benchmark: str, task: str) -> str:
        return self.bench.statement(task)

    def hidden_tests(self, benchmark: str, task: str) -> str:
        return self.bench.hidden_tests(task)


@dataclass
class Units:
    """A search's units for a run: what each needs is read from the archive here, the unit
    runs where the executor runs it, and what it brings back is recorded here."""

    config: RunConfig
    archive: Archive
    bench: Benchmark
    executor: Executor
    population: Population
    run_id: str
    stage_of: dict[str, str]
    """Each task's stage, as its results are recorded (`stage-1`, ..., `held-out`)."""
    needs: frozenset[str]
    rng: random.Random
    embedder: MiniLM | None = None

    def __call__(self, unit: Unit) -> Outcome:
        c, archive = self.config, self.archive
        box = SandboxSettings(**c.sandbox.model_dump(exclude={"backend"}))
        node = archive.node(unit.node)
        if unit.kind == "evaluate":
            task = unit.task or ""
            stage = self.stage_of.get(task, "default")
            key = Key(self.bench.name, task, c.models.agent, c.agent)
            if not (done := known(archive, node, key, stage=stage, run_id=self.run_id)):
                work = EvaluateWork(
                    str(unit), unit.node, archive.git.tar(node.commit), task, c.models.agent,
                    c.agent, stage, box,
                )  # fmt: skip
                result = self.executor.perform(work)
                done = archive.record_evaluations(unit.node, [result], run_id=self.run_id)[0]
            return evaluated(done)
        settings = ExpansionSettings(
            model=c.models.self_modification, diagnosis_model=c.models.diagnosis,
            entry_rules=self.bench.family, agent=c.agent, excerpt_chars=c.models.excerpt_chars,
            diagnosis_max_tokens=c.models.diagnosis_max_tokens,
        )  # fmt: skip
        planned = plan(
            unit.node, archive=archive, tasks=_Tasks(self.bench), settings=settings,
            rng=random.Random(self.rng.random()), run_id=self.run_id,
        )  # fmt: skip
        if isinstance(planned, Plan):
            work = ExpandWork(str(unit), planned, archive.git.tar(node.commit), settings, box)
            expansion = record(archive, planned, self.executor.perform(work), run_id=self.run_id)
        else:
            expansion = planned
        child, usable = expansion.child_id, not expansion.reason
        if not (child and usable):  # a rejected child is never a parent
            return Expanded(child, usable)
        held = self.review(child)
        if held is None:
            return Expanded(child, False)
        code = code_vector(self.archive, child, self.embedder) if self.embedder else None
        interesting = None
        if "verdicts" in self.needs:
            verdict = judge(
                self.archive, self.executor.gateway, child,
                self._neighbours(unit.node, child, code),
                model=c.models.judge or c.models.diagnosis, run_id=self.run_id,
            )  # fmt: skip
            interesting = verdict.interesting if verdict else None
        return Expanded(child, usable, interesting, code, held)

    def review(self, child: str) -> frozenset[str] | None:
        """The safety review of a child, kept with its gate passages in the audit log; the
        gates at which the run's policy holds it for a person (None: it rejects it)."""
        policy = self.config.review
        model = (policy.model or self.config.models.diagnosis) if policy.fm else None
        gateway = self.executor.gateway
        review_node(self.archive, child, reviewers(policy, gateway, model), run_id=self.run_id)
        state = gate_state(self.archive, self.archive.node(child), policy)
        for gate in HELD_GATES:
            v = state.verdicts[gate]
            payload = {"gate": gate, "state": v.state, "reason": v.reason, "risk": state.risk}
            self.archive.record_audit(
                "gate", payload, actor="policy", node_id=child, run_id=self.run_id
            )
        if rejected := [v.reason for v in state.verdicts.values() if v.state == "rejected"]:
            self.archive.set_status(child, NodeStatus.REJECTED, rejected[0])
            return None
        held = state.waits() & HELD_GATES
        if held:
            reasons = "; ".join(state.verdicts[g].reason for g in sorted(held))
            self.archive.set_status(child, NodeStatus.AWAITING_APPROVAL, reasons)
        return held

    def _neighbours(
        self, parent: str, child: str, code: np.ndarray | None, k: int = 5
    ) -> list[str]:
        """The archive members the judge compares a child with: the nearest in code space
        when there are embeddings, else its parent and the latest admitted."""
        members = dict(self.population.members)  # copies: the scheduler thread adds to them
        vectors = dict(self.population.code)
        admitted = [m for m in members.values() if m.admitted and m.id != child]
        if code is not None and vectors:
            near = [m.id for m in admitted if m.id in vectors]
            near.sort(key=lambda n: float(np.linalg.norm(vectors[n] - code)))
            return near[:k]
        latest = [m.id for m in reversed(admitted) if m.id != parent]
        return [parent, *latest[: k - 1]]
