"""A run: the archive, the FM gateway, the benchmark, the policy and the scheduler together.

A run is known by its name in its archive: running the same configuration again continues it.
Its population is rebuilt from the archive each time it starts (finished units are never run
again; units that were in flight when it died left nothing and are run again), and every
finished unit is written to the archive as it finishes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import signal
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from archive import Archive
from archive.errors import DiskFull, is_disk_full
from archive.records import NodeStatus, Origin, Run
from benchmarks.base import Benchmark
from benchmarks.registry import open_benchmark, subset_tasks
from dgm.config import ConfigError, RunConfig, dump_config
from dgm.embeddings import MiniLM, code_vector
from dgm.evaluate import evaluate
from dgm.expand import SEED_AGENT, ExpansionSettings, expand
from dgm.fm.providers import open_providers
from dgm.gateway import Budget as GatewayBudget
from dgm.gateway import Gateway, GatewaySettings, Spend
from dgm.judge import Verdict, judge
from dgm.policy import EvolutionPolicy, Member, Population, Unit
from dgm.run_status import expansions_done
from dgm.sandbox_pool import SandboxPool
from dgm.scheduler import Report, Scheduler
from dgm.selectors import make_selector
from sandbox.base import SandboxSettings
from sandbox.factory import open_sandbox

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    run_id: str
    name: str
    reason: str
    units_done: int
    best: str | None
    best_score: tuple[int, int]
    held_out: tuple[int, int] | None


@dataclass
class _Grown:
    """What an expansion unit brings back."""

    child: str | None
    usable: bool
    code: np.ndarray | None = None
    verdict: Verdict | None = None


class _Statements:
    """The benchmark as the TaskSource self-modification reads statements from."""

    def __init__(self, bench: Benchmark):
        self.bench = bench

    def statement(self, benchmark: str, task: str) -> str:
        return self.bench.statement(task)


class Engine:
    def __init__(self, config: RunConfig, *, on_change: Callable[[Engine], None] = lambda e: None):
        self.config = config
        self.on_change = on_change
        self.in_flight: list[Unit] = []  # two expansions of one parent are two units
        self.units_done = 0
        self.held_out_progress: tuple[int, int] | None = None
        """(done, of) tasks of the held-out answer, once it is being measured."""
        self.spend = (0, 0.0)
        self._scheduler: Scheduler | None = None
        self._interrupts = 0
        self._stopped_by: str | None = None  # the signal's reason, once one came

    # -- setting up --------------------------------------------------------------------------

    def _archive(self) -> Archive:
        root = Path(self.config.archive)
        if not (root / "archive.json").exists():
            return Archive.init(root)
        return Archive.open(root)

    def _run_row(self, archive: Archive, resume: bool) -> tuple[Run, bool]:
        """The run of this name (resumed: True), or a new one."""
        existing = [r for r in archive.runs() if r.name == self.config.name]
        if existing:
            return existing[-1], True
        if resume:
            raise ConfigError(f"no run named {self.config.name!r} in {archive.root} to resume")
        return archive.create_run(self.config.name, dump_config(self.config)), False

    def _population(self, archive: Archive, run: Run, searched: set[str]) -> Population:
        if not any(n.run_id == run.id for n in archive.nodes()):
            seed = self.config.seed_agent or SEED_AGENT
            archive.add_node(Path(seed), origin=Origin.SEED, run_id=run.id)
        return Population.from_archive(
            archive, run.id, benchmark=self.bench.name, model=self.config.models.agent,
            tasks=searched,
        )  # fmt: skip

    # -- running -----------------------------------------------------------------------------

    def run(self, *, resume: bool = False) -> Outcome:
        c = self.config
        self.archive = archive = self._archive()
        try:
            self.bench = open_benchmark(
                c.benchmark.name, c.benchmark.path, backend=c.sandbox.backend, pull=c.benchmark.pull
            )
            stages = [subset_tasks(self.bench, s.subset) for s in c.benchmark.stages]
            held = subset_tasks(self.bench, c.benchmark.held_out) if c.benchmark.held_out else []
            searched = {t for stage in stages for t in stage}
            if overlap := sorted(searched & set(held)):
                raise ConfigError(f"held-out task {overlap[0]} is also in a searched stage")
            run, resumed = self._run_row(archive, resume)
            self.run_row = run
            if resumed:
                _reap(run.id)
            self.population = self._population(archive, run, searched)
            rng = random.Random(c.seed)
            policy = EvolutionPolicy(
                self.population, stages, [s.threshold for s in c.benchmark.stages],
                make_selector(c.selector.name, c.selector.params), mode=c.scheduler.mode,
                generation_size=c.scheduler.generation_size, rng=rng,
                evaluation_budget=c.budget.evaluations,
            )  # fmt: skip
            self.policy = policy
            self._embedder = MiniLM() if "code" in policy.selector.needs else None
            if self._embedder:  # members without an embedding get one (kept in the archive)
                for member in self.population.members.values():
                    if member.usable:
                        vector = code_vector(archive, member.id, self._embedder)
                        self.population.code[member.id] = vector
            self._sandboxes = SandboxPool(
                lambda settings, unit: open_sandbox(
                    c.sandbox.backend, settings, run_id=run.id, unit_id=unit
                )
            )
            log_dir = archive.root / "runs"
            log_dir.mkdir(exist_ok=True)
            self._log = (log_dir / f"{c.name}-{run.id[:8]}.jsonl").open("a")
            self._record(
                "run_resumed" if resumed else "run_started", benchmark=self.bench.name,
                model=c.models.agent, searched=sorted(searched), held_out=held,
            )  # fmt: skip
            with open_providers() as providers:
                m = c.models  # the gateway forwards calls for these models only
                models = {m.self_modification, m.agent, m.diagnosis, m.judge or m.diagnosis}
                settings = GatewaySettings(
                    openai=providers.openai, anthropic=providers.anthropic,
                    budget=GatewayBudget(usd=c.budget.usd, tokens=c.budget.tokens),
                    models=sorted(models), max_output_tokens=m.max_output_tokens,
                )  # fmt: skip
                spent = Spend(*archive.fm_spend(run.id))
                with Gateway(settings, archive, run_id=run.id, spent=spent) as gateway:
                    self.gateway, self.rng = gateway, rng
                    previous = self._install_signals()
                    try:
                        report = self._search(policy)
                        held_out = None
                        if held and report.reason not in ("interrupted", "terminated"):
                            held_out = self._held_out(held)
                            if self._stopped_by:  # cut short: no figure to report
                                report.reason, held_out = self._stopped_by, None
                    finally:
                        for signum, handler in previous.items():
                            signal.signal(signum, handler)
            status = "stopped" if report.reason in ("interrupted", "terminated") else "finished"
            archive.finish_run(run.id, status, report.reason)
            self._record("run_" + status, reason=report.reason)
            best, score = self.best()
            return Outcome(run.id, c.name, report.reason, report.units_done, best, score, held_out)
        except Exception as error:
            if is_disk_full(error):  # nothing finished is lost; what was in flight runs again
                raise DiskFull(
                    f"a disk the run writes to is full (its archive is {archive.root}); "
                    "free space and run the same command again to continue"
                ) from error
            raise
        finally:
            if getattr(self, "_log", None):
                with contextlib.suppress(OSError):  # a full disk may refuse the last line
                    self._log.close()
            archive.close()

    def _search(self, policy: EvolutionPolicy):
        c = self.config
        counts = self.archive.event_counts(self.run_row.id)
        self._expansions = expansions_done(len(self.population.members), counts)
        if c.budget.expansions is not None:  # a limit on expansions, not on owed evaluations
            policy.expansions_left = max(0, c.budget.expansions - self._expansions)
        scheduler = Scheduler(
            c.scheduler.workers, policy, self._execute, finished=self._finished,
            failed=self._failed, spent=self._spent, started=self._started,
        )  # fmt: skip
        report = self._schedule(scheduler)
        if report.reason == "nothing left to do" and policy.expansions_left == 0:
            report.reason = "budget expansions spent"
        return report

    def _schedule(self, scheduler: Scheduler) -> Report:
        self._scheduler = scheduler
        try:
            report = scheduler.run()
        except BaseException:  # the units in flight are given up: end them
            self._sandboxes.abandon()
            raise
        if report.abandoned:  # end them now: nothing they do from here on is recorded
            self._sandboxes.abandon()
        return report

    def _execute(self, unit: Unit) -> Any:
        c = self.config
        box = SandboxSettings(**c.sandbox.model_dump(exclude={"backend"}))
        new_sandbox = self._sandboxes.opener(str(unit))
        if unit.kind == "evaluate":
            result = evaluate(
                unit.node, self.bench, unit.task or "", archive=self.archive,
                gateway=self.gateway, new_sandbox=new_sandbox, model=c.models.agent,
                sandbox_settings=box, max_steps=c.agent.max_steps, timeout_s=c.agent.timeout_s,
                run_id=self.run_row.id,
            )  # fmt: skip
            return result.resolved if result.status.counted else None
        rules = "polyglot" if "polyglot" in self.bench.name else "swe-bench"
        expansion = expand(
            unit.node, archive=self.archive, gateway=self.gateway, new_sandbox=new_sandbox,
            tasks=_Statements(self.bench),
            settings=ExpansionSettings(
                model=c.models.self_modification, diagnosis_model=c.models.diagnosis,
                entry_rules=rules, max_steps=c.agent.max_steps, agent_timeout_s=c.agent.timeout_s,
                excerpt_chars=c.models.excerpt_chars,
                diagnosis_max_tokens=c.models.diagnosis_max_tokens,
            ),
            sandbox_settings=box, run_id=self.run_row.id,
            rng=random.Random(self.rng.random()), unit_id=str(unit),
            abandoned=lambda: self._sandboxes.abandoned,
        )  # fmt: skip
        grown = _Grown(expansion.child_id, not expansion.reason)
        if grown.child and grown.usable:  # a rejected child is never a parent
            if self._embedder:
                grown.code = code_vector(self.archive, grown.child, self._embedder)
            if "verdicts" in self.policy.selector.needs:
                grown.verdict = judge(
                    self.archive, self.gateway, grown.child, self._neighbours(unit.node, grown),
                    model=c.models.judge or c.models.diagnosis, run_id=self.run_row.id,
                )  # fmt: skip
        return grown

    def _neighbours(self, parent: str, grown: _Grown, k: int = 5) -> list[str]:
        """The archive members the judge compares a child with: the nearest in code space
        when there are embeddings, else its parent and the latest admitted."""
        members = dict(self.population.members)  # copies: the scheduler thread adds to them
        code = dict(self.population.code)
        admitted = [m for m in members.values() if m.admitted and m.id != grown.child]
        if grown.code is not None and code:
            near = [m.id for m in admitted if m.id in code]
            near.sort(key=lambda n: float(np.linalg.norm(code[n] - grown.code)))
            return near[:k]
        latest = [m.id for m in reversed(admitted) if m.id != parent]
        return [parent, *latest[: k - 1]]

    def _started(self, unit: Unit) -> None:
        self.in_flight.append(unit)
        self._expansions += unit.kind == "expand"
        self._record("unit_started", unit.node, unit=str(unit))
        self.on_change(self)

    def _finished(self, unit: Unit, result: Any) -> None:
        if unit.kind == "evaluate":
            self.policy.evaluated(unit.node, unit.task or "", result)
            self._settle(unit, "unit_finished", result=result)
            return
        self.policy.expanded(unit.node, result.child, result.usable)
        if result.child and result.code is not None:
            self.population.code[result.child] = result.code
        if result.child and result.verdict is not None:
            self.population.judged(result.child, result.verdict.interesting)
        self._settle(unit, "unit_finished", child=result.child, usable=result.usable)

    def _failed(self, unit: Unit, error: BaseException) -> None:
        if is_disk_full(error):  # not the unit's fault: the run stops, the unit runs again
            raise error
        log.error("unit %s failed", unit, exc_info=error)
        self.policy.failed(unit)
        self._settle(unit, "unit_failed", error=f"{type(error).__name__}: {error}")

    def _settle(self, unit: Unit, kind: str, **details: Any) -> None:
        self.in_flight.remove(unit)
        self.units_done += 1
        for node in self.policy.to_admit(self.in_flight):
            self.archive.set_status(node, NodeStatus.ADMITTED, "staged evaluation complete")
            self.population.admit(node)
        self._record(kind, unit.node, unit=str(unit), **details)
        self.on_change(self)

    def budget_used(self) -> dict[str, float]:
        """Each budget that has a limit: the share of it spent (1.0 and over: all of it)."""
        b = self.config.budget
        tokens, usd = self.spend = self.archive.fm_spend(self.run_row.id)
        elapsed = (_now() - self.run_row.started_at).total_seconds()
        lines = {
            "usd": (usd, b.usd),
            "tokens": (tokens, b.tokens),
            "evaluations": (self.policy.evaluations_used(self.in_flight), b.evaluations),
            "expansions": (self._expansions, b.expansions),
            "wall_clock": (elapsed, b.wall_clock and b.wall_clock.total_seconds()),
        }
        return {
            name: spent / limit if limit else 1.0
            for name, (spent, limit) in lines.items()
            if limit is not None
        }

    def _spent(self) -> str | None:
        for name, share in self.budget_used().items():
            # expansions: the policy starts no more, and the evaluations they owe go on
            if share >= 1 and name != "expansions":
                return f"budget {name} spent"
        # calls reserve their worst case: what is left may be too little for one
        if short := self.gateway.ledger.short_of():
            return f"budget {short} spent"
        return None

    def _held_out(self, tasks: list[str]) -> tuple[int, int]:
        """The run's answer on tasks the search never saw."""
        best, _ = self.best()
        if best is None:
            return (0, 0)
        answer = Member(best, None)
        self.held_out_progress = (0, len(tasks))
        self.on_change(self)

        def finished(unit: Unit, resolved: bool | None) -> None:
            answer.results[unit.task or ""] = resolved
            self.held_out_progress = (len(answer.results), len(tasks))
            self.on_change(self)

        scheduler = Scheduler(
            self.config.scheduler.workers, _HeldOut(best, tasks), self._execute, finished=finished
        )
        self._schedule(scheduler)
        resolved, attempted = answer.score()
        self._record("held_out", best, resolved=resolved, attempted=attempted)
        return resolved, attempted

    def best(self) -> tuple[str | None, tuple[int, int]]:
        """The run's answer as its selector chooses it, and its score on the searched tasks."""
        answer = self.policy.answer()
        return answer, (self.population.members[answer].score() if answer else (0, 0))

    # -- signals and logs --------------------------------------------------------------------

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def interrupt(signum, frame):
            self._interrupts += 1
            assert self._scheduler is not None
            if signum == signal.SIGTERM:
                self._stopped_by = "terminated"
                self._scheduler.stop("terminated", abandon=True)
            else:  # Ctrl-C: finish what is in flight; a second one abandons it
                self._stopped_by = self._stopped_by or "interrupted"
                self._scheduler.stop("interrupted", abandon=self._interrupts > 1)

        return {
            signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)
        }

    def _record(self, kind: str, node: str | None = None, **details: Any) -> None:
        """An event in the archive (what `dgm status` reads) and a line of the run's log."""
        self.archive.append_event(kind, details, run_id=self.run_row.id, node_id=node)
        line = {"time": _now().isoformat(), "event": kind, "run": self.run_row.id}
        line |= {"node": node} if node else {}
        self._log.write(json.dumps(line | details, default=str) + "\n")
        self._log.flush()


class _HeldOut:
    def __init__(self, node: str, tasks: list[str]):
        self.pending = [Unit("evaluate", node, task) for task in tasks]

    def next_unit(self, in_flight: Collection[Unit]) -> Unit | None:
        return self.pending.pop(0) if self.pending else None


def _reap(run_id: str) -> None:
    """Remove the sandboxes a killed process of this run left behind."""
    from sandbox.base import SandboxError
    from sandbox.docker_sandbox import connect, reap

    with contextlib.suppress(SandboxError):  # no Docker engine: nothing of ours runs in one
        reap(connect(), run_id)


def _now() -> datetime:
    return datetime.now(UTC)
