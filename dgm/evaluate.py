"""The evaluate(node, task) unit: run a node's agent on one benchmark task and grade it.

A result is keyed by (agent tree, benchmark, task, model, agent limits): a tree already
evaluated on the task with the model under the same limits is not run again; its result is
recorded for this node at no cost, unless more attempts are asked for.

An agent that runs out of time or memory is judged on what it had written by then: a patch is
graded, no patch is a counted `timeout`. Only the harness failing is an `error`.

`attempt` is the part that needs no archive (the agent's files in, the result out), so it can
run wherever the sandbox is; `evaluate` looks up what is known, checks the agent out and
records what `attempt` brings back.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from archive import Archive
from archive.records import EvalStatus, Evaluation, EvaluationResult, Node
from benchmarks.agent_run import AgentLimits, run_agent, task_repository
from benchmarks.base import Benchmark, BenchmarkError
from dgm.gateway.unit_gateway import UnitGateway
from dgm.sandbox_pool import Abandoned
from sandbox.base import ExecStatus, Sandbox, SandboxError, SandboxSettings


def evaluate(
    node_id: str,
    benchmark: Benchmark,
    task: str,
    *,
    archive: Archive,
    gateway: UnitGateway,
    new_sandbox: Callable[[SandboxSettings], Sandbox],
    model: str,
    sandbox_settings: SandboxSettings | None = None,
    limits: AgentLimits = AgentLimits(),
    stage: str = "default",
    again: bool = False,
    run_id: str | None = None,
) -> Evaluation:
    """`stage`: what the result is recorded as (a run's stage, `held-out`, or `default`)."""
    node = archive.node(node_id)
    key = Key(benchmark.name, task, model, limits)
    if not again and (done := known(archive, node, key, stage=stage, run_id=run_id)):
        return done
    with tempfile.TemporaryDirectory(prefix="dgm-agent-") as tmp:
        agent = Path(tmp) / "agent"
        archive.git.checkout(node.commit, agent)
        result = attempt(
            agent, benchmark, task, node_id=node_id, gateway=gateway, new_sandbox=new_sandbox,
            model=model, sandbox_settings=sandbox_settings, limits=limits, stage=stage,
        )  # fmt: skip
    return archive.record_evaluations(node_id, [result], run_id=run_id)[0]


@dataclass(frozen=True)
class Key:
    """What a result is known by, beside the agent's tree."""

    benchmark: str
    task: str
    model: str
    limits: AgentLimits


def known(
    archive: Archive, node: Node, key: Key, *, stage: str, run_id: str | None
) -> Evaluation | None:
    """The node's own counted result, or one its tree already has (recorded for the node at
    no cost); None when it must be attempted."""
    fields = (key.benchmark, key.task, key.model, key.limits.key)
    own = [
        e
        for e in archive.evaluations(node.id)
        if (e.benchmark, e.task, e.model, e.limits) == fields and e.status.counted
    ]
    if own:
        return own[-1]
    cached = archive.cached_evaluation(node.tree, *fields)
    if cached is None:
        return None
    blobs = [
        archive.blobs.get(ref) if ref else None
        for ref in (cached.log_blob, cached.patch_blob, cached.trajectory_blob)
    ]
    reused = EvaluationResult(
        key.benchmark, key.task, cached.status, stage=stage, duration_s=cached.duration_s,
        cost_usd=0.0, model=key.model, limits=key.limits.key,
        log=blobs[0], patch=blobs[1], trajectory=blobs[2],
    )  # fmt: skip
    return archive.record_evaluations(node.id, [reused], run_id=run_id)[0]


def attempt(
    agent: Path,
    benchmark: Benchmark,
    task: str,
    *,
    node_id: str,
    gateway: UnitGateway,
    new_sandbox: Callable[[SandboxSettings], Sandbox],
    model: str,
    sandbox_settings: SandboxSettings | None = None,
    limits: AgentLimits = AgentLimits(),
    stage: str = "default",
) -> EvaluationResult:
    """One attempt of the agent in `agent` (its files) at the task, graded: the result to
    record, with no archive involved (a harness failure is an `error` result)."""
    start = time.monotonic()
    box = (sandbox_settings or SandboxSettings()).model_copy(
        update={"gateway_socket": gateway.socket_path}
    )

    def harness_error(reason: str) -> EvaluationResult:
        return EvaluationResult(
            benchmark.name, task, EvalStatus.ERROR, stage=stage,
            duration_s=time.monotonic() - start, cost_usd=0.0, model=model, limits=limits.key,
            log=reason.encode(),
        )  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="dgm-eval-") as tmp:
        try:
            statement = benchmark.statement(task)
            if image := benchmark.image(task):
                box = box.model_copy(update={"image": image})
            repo = task_repository(benchmark, task, Path(tmp) / "repo")
        except BenchmarkError as error:
            return harness_error(str(error))
        lease = gateway.open_unit(f"evaluate:{node_id[:8]}:{task}", node_id=node_id)
        try:
            with new_sandbox(box) as sandbox:
                run = run_agent(
                    sandbox, agent, repo, statement, env=lease.env(box.gateway_port),
                    model=model, limits=limits,
                )  # fmt: skip
        except Abandoned:
            raise  # not a result: the unit runs again when the run continues
        except SandboxError as error:
            return harness_error(f"the agent's sandbox failed: {error}")
        finally:
            spent = gateway.close_unit(lease)
    findings = ()
    ran_out = {ExecStatus.TIMEOUT: "time", ExecStatus.OOM: "memory"}.get(run.result.status)
    if ran_out and not run.patch.strip():
        status, log = EvalStatus.TIMEOUT, f"the agent ran out of {ran_out} without a patch"
    elif not run.patch.strip():
        status, log = EvalStatus.EMPTY, "the agent produced no patch"
    else:
        outcome = benchmark.grade(task, run.patch)
        status, log, findings = outcome.status, outcome.log, outcome.findings
        if ran_out:
            log = f"the agent ran out of {ran_out}; the patch it had written was graded\n{log}"
    log += run.notes()
    return EvaluationResult(
        benchmark.name, task, status, stage=stage, duration_s=time.monotonic() - start,
        cost_usd=spent.usd, model=model, limits=limits.key, log=log.encode(),
        patch=run.patch.encode(), trajectory=run.trajectory,
        findings=tuple(asdict(f) for f in findings),
    )  # fmt: skip
