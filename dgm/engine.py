"""A run: the archive, the FM gateway, the benchmark, the search and the scheduler together.

A run is known by its name in its archive: running the same configuration again continues it.
Its population is rebuilt from the archive each time it starts (finished units are never run
again; units that were in flight when it died left nothing and are run again), and every
finished unit is written to the archive as it finishes.
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archive import Archive, config_hash
from archive.errors import DiskFull, RunHeld, is_disk_full
from archive.events import EventKind, RunTasks
from archive.records import HELD_OUT_STAGE, NodeStatus, Origin, Run
from benchmarks.registry import open_benchmark, subset_tasks
from dgm import budget
from dgm.config import ConfigError, RunConfig, dump_config
from dgm.embeddings import MiniLM, code_vector
from dgm.execute import Units
from dgm.executors import Executor, check_executor, open_executor
from dgm.expand import SEED_AGENT
from dgm.fm.prices import price_of
from dgm.fm.providers import open_providers
from dgm.gateway import Budget as GatewayBudget
from dgm.gateway import GatewaySettings, Spend
from dgm.review.service import HELD_GATES, undecided_states
from dgm.run_lease import Lease
from dgm.run_log import RunLog
from dgm.run_population import run_population
from dgm.scheduler import Report, Scheduler
from dgm.search import Decision, Expanded, Member, Outcome, Search, Stage, Unit, make_search
from dgm.unit_work import BenchmarkSpec

log = logging.getLogger(__name__)
LEASE_LOST = "lease lost"
DECISION_POLL_S = 1.0  # how often a running search looks for people's decisions


@dataclass
class RunEnd:
    run_id: str
    name: str
    reason: str
    units_done: int
    best: str | None
    best_score: tuple[int, int]
    """The answer's (resolved, attempted) on the searched tasks."""
    answer_rule: str
    held_out: tuple[int, int] | None
    awaiting: int
    """Nodes the safety policy holds for a person's decision."""


class Engine:
    def __init__(self, config: RunConfig, *, on_change: Callable[[Engine], None] = lambda e: None):
        self.config = config
        self.on_change = on_change
        self.units_done = 0
        self.held_out_progress: tuple[int, int] | None = None
        """(done, of) tasks of the held-out answer, once it is being measured."""
        self.policy: Search | None = None
        self._scheduler: Scheduler | None = None
        self._interrupts = 0
        self._stopped_by: str | None = None  # the signal's reason, once one came
        self._start_kind = EventKind.RUN_STARTED
        self._last_decision = 0
        self._next_poll = 0.0
        self._unreviewed: list[str] = []
        self._lease: Lease | None = None
        self.executor: Executor
        self.placed: dict[str, str] = {}
        """The node each unit (by its name) last started on."""

    @property
    def in_flight(self) -> list[Unit]:
        """The search's units in flight (two expansions of one parent are two units)."""
        return list(self.policy.in_flight) if self.policy else []

    @property
    def awaiting(self) -> int:
        """Members the safety policy holds for a person's decision."""
        return len(self.policy.gated) if self.policy else 0

    # -- running -----------------------------------------------------------------------------

    def run(self, *, resume: bool = False) -> RunEnd:
        c = self.config
        check_executor(c.executor)
        root = Path(c.archive)
        self.archive = archive = (
            Archive.open(root) if (root / "archive.json").exists() else Archive.init(root)
        )
        self.log: RunLog | None = None
        try:
            self.bench = open_benchmark(
                c.benchmark.name, c.benchmark.path, backend=c.sandbox.backend, pull=c.benchmark.pull
            )
            stages, tasks, stage_of = self._tasks()
            self.run_row = run = self._start(archive, tasks, resume)
            self.log = RunLog(archive, run.id, c.name)
            self.log.line(self._start_kind, **tasks)
            # decisions people make from here on are picked up while the run goes on
            self._last_decision = max((d.id for d in archive.decisions_after(0)), default=0)
            gates = undecided_states(archive, run.id, c.review)
            self._unreviewed = [n for n, state in gates.items() if state.review is None]
            self.population = run_population(
                archive, run.id, benchmark=self.bench.name, model=c.models.agent,
                tasks=set(tasks["searched"]),
                held={n: state.waits() & HELD_GATES for n, state in gates.items()},
            )  # fmt: skip
            self.policy = policy = make_search(
                c.selector.name, c.selector.params, self.population, stages,
                mode=c.scheduler.mode, generation_size=c.scheduler.generation_size,
                workers=c.scheduler.workers, rng=random.Random(c.seed),
                evaluation_budget=c.budget.evaluations,
            )  # fmt: skip
            if c.budget.expansions is not None:  # a limit on expansions, not on owed evaluations
                made = sum(self.population.expansions.values())
                policy.expansions_left = max(0, c.budget.expansions - made)
            self._decide(policy.decisions())  # members a crash left done but undecided
            report, held_out = self._search(policy, stage_of, tasks["held_out"])
            if self._stopped_by == LEASE_LOST:  # the run's rows are the new holder's now
                raise RunHeld(
                    f"run {c.name!r} was taken over by another scheduler; this one stopped "
                    "and recorded none of its units in flight"
                )
            status = "stopped" if report.reason in ("interrupted", "terminated") else "finished"
            archive.finish_run(run.id, status, report.reason)
            self.log.line(EventKind.RUN_FINISHED, status=status, reason=report.reason)
            best, score = self.best()
            return RunEnd(
                run.id, c.name, report.reason, report.units_done, best, score,
                policy.answer_rule, held_out, self.awaiting,
            )  # fmt: skip
        except Exception as error:
            if is_disk_full(error):  # nothing finished is lost; what was in flight runs again
                raise DiskFull(
                    f"a disk the run writes to is full (its archive is {archive.root}); "
                    "free space and run the same command again to continue"
                ) from error
            raise
        finally:
            if self.log:
                self.log.close()
            if self._lease is not None:
                self._lease.release()
            archive.close()

    def _tasks(self) -> tuple[list[Stage], RunTasks, dict[str, str]]:
        """The search's stages, the run's tasks, and the stage each task's results are
        recorded under (its first stage, or `held-out`)."""
        c = self.config
        stages = [
            Stage(subset_tasks(self.bench, s.subset), s.threshold) for s in c.benchmark.stages
        ]
        held = subset_tasks(self.bench, c.benchmark.held_out) if c.benchmark.held_out else []
        searched = {t for stage in stages for t in stage.tasks}
        if overlap := sorted(searched & set(held)):
            raise ConfigError(f"held-out task {overlap[0]} is also in a searched stage")
        stage_of = dict.fromkeys(held, HELD_OUT_STAGE)
        for number, stage in reversed(list(enumerate(stages, 1))):
            stage_of |= dict.fromkeys(stage.tasks, f"stage-{number}")
        tasks = RunTasks(
            benchmark=self.bench.name, model=c.models.agent, searched=sorted(searched),
            held_out=held,
        )  # fmt: skip
        return stages, tasks, stage_of

    def _start(self, archive: Archive, tasks: RunTasks, resume: bool) -> Run:
        """The run of this name, running again, or a new one; with its seed."""
        c = self.config
        config = dump_config(c)
        tasks = tasks | {"config_hash": config_hash(config), "prices": self._prices()}
        existing = [r for r in archive.runs() if r.name == c.name]
        if existing:
            self._hold(existing[-1])  # before anything of it is touched
            _reap(existing[-1].id)  # the sandboxes a killed process of it left behind
            run, self._start_kind = (
                archive.resume_run(existing[-1].id, tasks, config),
                EventKind.RUN_RESUMED,
            )
        elif resume:
            raise ConfigError(f"no run named {c.name!r} in {archive.root} to resume")
        else:
            run = archive.create_run(c.name, config, tasks)
            self._hold(run)
            self._start_kind = EventKind.RUN_STARTED
        if not any(n.run_id == run.id for n in archive.nodes()):
            archive.add_node(Path(c.seed_agent or SEED_AGENT), origin=Origin.SEED, run_id=run.id)
        return run

    def _models(self) -> list[str]:
        """The models the run calls (the gateway forwards these only)."""
        c, m = self.config, self.config.models
        return sorted({
            m.self_modification, m.agent, m.diagnosis, m.judge or m.diagnosis,
            c.review.model or m.diagnosis,
        })  # fmt: skip

    def _prices(self) -> dict[str, list[float] | None]:
        """What each of the run's models costs, USD per million tokens in and out (None: no
        price is known), as metering uses it."""
        return {model: list(p) if (p := price_of(model)) else None for model in self._models()}

    def _hold(self, run: Run) -> None:
        """Take the run's lease (RunHeld names who has it) and keep it while this runs."""
        self._lease = Lease(
            self.archive, run.id, run.name, lease_s=self.config.scheduler.lease_s,
            on_lost=self._lease_lost,
        )  # fmt: skip
        self._lease.take()

    def _lease_lost(self) -> None:
        """Another scheduler holds the run now: stop at once, recording nothing more."""
        self._stopped_by = LEASE_LOST
        if self._scheduler is not None:
            self._scheduler.stop(LEASE_LOST, abandon=True)

    def _search(
        self, policy: Search, stage_of: dict[str, str], held: list[str]
    ) -> tuple[Report, tuple[int, int] | None]:
        """The search until it stops, then its answer on the held-out tasks."""
        c = self.config
        embedder = MiniLM() if "code" in policy.needs else None
        if embedder:  # members without an embedding get one (kept in the archive)
            for member in self.population.members.values():
                if member.usable:
                    vector = code_vector(self.archive, member.id, embedder)
                    self.population.code[member.id] = vector
        with open_providers() as providers:
            settings = GatewaySettings(
                openai=providers.openai, anthropic=providers.anthropic,
                budget=GatewayBudget(usd=c.budget.usd, tokens=c.budget.tokens),
                models=self._models(),  # it forwards calls for these models only
                max_output_tokens=c.models.max_output_tokens,
            )  # fmt: skip
            b = c.benchmark
            spec = BenchmarkSpec(b.name, b.path, c.sandbox.backend, b.pull)
            with open_executor(
                c.executor, run_id=self.run_row.id, benchmark=self.bench, spec=spec,
                gateway=settings, archive=self.archive,
                spent=Spend(*self.archive.fm_spend(self.run_row.id)),
            ) as executor:  # fmt: skip
                self.executor = executor
                self._execute = Units(
                    c, self.archive, self.bench, executor, self.population, self.run_row.id,
                    stage_of, policy.needs, random.Random(c.seed), embedder,
                )  # fmt: skip
                self._review_unreviewed(policy)
                previous = self._install_signals()
                try:
                    scheduler = Scheduler(
                        c.scheduler.workers, policy.ask, self._execute, finished=self._finished,
                        failed=self._failed, spent=self._spent, started=self._started,
                        tick=self._tick,
                    )  # fmt: skip
                    report = self._schedule(scheduler)
                    if report.reason == "nothing left to do" and policy.expansions_left == 0:
                        report.reason = "budget expansions spent"
                    held_out = None
                    if held and report.reason not in ("interrupted", "terminated", LEASE_LOST):
                        held_out = self._held_out(held)
                        if self._stopped_by:  # cut short: no figure to report
                            report.reason, held_out = self._stopped_by, None
                    return report, held_out
                finally:
                    for signum, handler in previous.items():
                        signal.signal(signum, handler)

    def _schedule(self, scheduler: Scheduler) -> Report:
        self._scheduler = scheduler
        try:
            report = scheduler.run()
        except BaseException:  # the units in flight are given up: end them
            self.executor.abandon()
            raise
        if report.abandoned:  # end them now: nothing they do from here on is recorded
            self.executor.abandon()
        return report

    def _review_unreviewed(self, policy: Search) -> None:
        """Children a crash left committed but not reviewed are reviewed before anything
        else (until then they wait at every gate)."""
        for node in self._unreviewed:
            held = self._execute.review(node)
            if held is None or not held:
                self._decide(policy.release(node, approved=held is not None))
            else:
                self.population.members[node].held = held

    def _tick(self) -> None:
        """Where units started, and the decisions people made meanwhile (once a second at
        most; the scheduler calls this while its workers are busy too)."""
        assert self.policy is not None
        if time.monotonic() < self._next_poll:
            return
        self._next_poll = time.monotonic() + DECISION_POLL_S
        self._placed()
        for decision in self.archive.decisions_after(self._last_decision):
            self._last_decision = decision.id
            if decision.node_id in self.population.members:
                approved = decision.decision == "approve"
                self._decide(self.policy.release(decision.node_id, approved))

    def _placed(self) -> None:
        """Where the units that started meanwhile run (what `dgm status` shows)."""
        placements = self.executor.placements()
        for unit, node in placements:
            self.placed[unit] = node
            self._log(EventKind.UNIT_PLACED, None, unit=unit, machine=node)
        if placements:
            self.on_change(self)

    def _started(self, unit: Unit) -> None:
        self._log(EventKind.UNIT_STARTED, unit.node, unit=str(unit))
        self.on_change(self)

    def _finished(self, unit: Unit, outcome: Outcome) -> None:
        if isinstance(outcome, Expanded):
            details = {"child": outcome.child, "usable": outcome.usable}
        else:
            details = {"result": outcome.resolved, "patched": outcome.patched}
        self._settle(unit, outcome, EventKind.UNIT_FINISHED, **details)

    def _failed(self, unit: Unit, error: BaseException) -> None:
        if is_disk_full(error):  # not the unit's fault: the run stops, the unit runs again
            raise error
        log.error("unit %s failed", unit, exc_info=error)
        self._settle(unit, None, EventKind.UNIT_FAILED, error=f"{type(error).__name__}: {error}")

    def _settle(self, unit: Unit, outcome: Outcome | None, kind: EventKind, **details: Any) -> None:
        self.units_done += 1
        assert self.policy is not None
        self._decide(self.policy.tell(unit, outcome))
        self._log(kind, unit.node, unit=str(unit), **details)
        self.on_change(self)

    def _decide(self, decisions: list[Decision]) -> None:
        """The search's decisions on members, into the archive (a member held for a person
        waits: `awaiting-approval`); an admission is a passage of the `admit` gate."""
        for d in decisions:
            if d.admitted is None:
                status = NodeStatus.AWAITING_APPROVAL
            else:
                status = NodeStatus.ADMITTED if d.admitted else NodeStatus.REJECTED
            node = self.archive.node(d.node)
            if node.status is status:
                continue
            self.archive.set_status(d.node, status, d.reason)
            if status is NodeStatus.ADMITTED and node.parent_id is not None:
                self.archive.record_audit(
                    "gate", {"gate": "admit", "state": "passed", "reason": d.reason},
                    actor="run", node_id=d.node, run_id=self.run_row.id,
                )  # fmt: skip

    def budget_lines(self) -> dict[str, budget.Line]:
        """Each budget: its limit and what is spent, the units in flight counted."""
        return budget.lines(
            self.config.budget, self.archive, self.run_row, self.population, self.in_flight
        )

    def _spent(self) -> str | None:
        if reason := budget.spent(self.budget_lines()):
            return reason
        # calls reserve their worst case: what is left may be too little for one
        if short := self.executor.gateway.ledger.short_of():
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

        def finished(unit: Unit, outcome: Outcome) -> None:
            answer.results[unit.task or ""] = outcome
            self.held_out_progress = (len(answer.results), len(tasks))
            self.on_change(self)

        pending = [Unit("evaluate", best, task) for task in tasks]
        scheduler = Scheduler(
            self.config.scheduler.workers, lambda: pending.pop(0) if pending else None,
            self._execute, finished=finished,
        )  # fmt: skip
        self._schedule(scheduler)
        resolved, attempted = answer.score()
        self._log(EventKind.HELD_OUT, best, resolved=resolved, attempted=attempted)
        return resolved, attempted

    def best(self) -> tuple[str | None, tuple[int, int]]:
        """The run's answer as its search chooses it, and its score on the searched tasks."""
        answer = self.policy.answer() if self.policy else None
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

    def _log(self, kind: EventKind, node: str | None = None, **details: Any) -> None:
        assert self.log is not None
        self.log.record(kind, node, **details)


def _reap(run_id: str) -> None:
    """Remove the sandboxes a killed process of this run left behind."""
    from sandbox.base import SandboxError
    from sandbox.docker_sandbox import connect, reap

    with contextlib.suppress(SandboxError):  # no Docker engine: nothing of ours runs in one
        reap(connect(), run_id)
