"""Self-modification: one expansion of a parent agent into a child (DGM's self-improve step).

1. Choose what to improve: one of the parent's failed tasks, or one of DGM's special entries
   (too many empty patches, stochasticity, context overflow).
2. Ask the diagnosis model why the agent failed and what one change would help; write that as
   a problem statement.
3. Run the parent agent, in a sandbox, on a checkout of its own code with that statement.
4. Take its diff; run the child's own tests in a fresh sandbox; commit the child.

Everything an expansion learns is kept: a child whose tests fail is committed as rejected
with the reason, and an expansion without a usable diff is an `expansion_failed` event.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from archive import Archive
from archive.events import EventKind
from archive.records import EvalStatus, Evaluation, NodeStatus, Origin
from benchmarks import patches
from benchmarks.agent_run import AgentLimits, git_repository, run_agent
from benchmarks.base import Family
from dgm import diagnosis
from dgm.fm.errors import FMError
from dgm.gateway import Spend
from dgm.gateway.unit_gateway import UnitGateway
from dgm.sandbox_pool import Abandoned
from sandbox.base import Sandbox, SandboxSettings, in_folder

SEED_AGENT = Path(__file__).with_name("seed_agent")

# DGM's entry rule (choose_selfimproves in DGM_outer.py): "Solve empty patches" when at least
# 10% of the parent's patches were empty, and then only with probability 0.25; else
# "Solve stochasticity" with 0.25; else "Solve context length" with 0.25 when a task it did
# not solve overflowed the context; else one of the tasks it did not solve
EMPTY_PATCH_SHARE = 0.1
EMPTY_PATCH_CHANCE = 0.25
STOCHASTICITY_CHANCE = 0.25
CONTEXT_LENGTH_CHANCE = 0.25


class TaskSource(Protocol):
    """What the diagnosis model is shown of a task (a benchmark's)."""

    def statement(self, benchmark: str, task: str) -> str: ...

    def hidden_tests(self, benchmark: str, task: str) -> str: ...


class ExpansionSettings(BaseModel):
    model: str = "gpt-4o"
    """The model the parent agent runs with while it rewrites itself."""
    diagnosis_model: str = "gpt-4o"
    entry_rules: Family = "swe-bench"
    """DGM's rules for what to improve: SWE-bench's (with special entries) or Polyglot's."""
    test_command: list[str] = ["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    """The agent's own tests, run in its folder."""
    agent: AgentLimits = AgentLimits()
    test_timeout_s: float = 600.0
    diagnosis_attempts: int = 3
    diagnosis_max_tokens: int = 4096
    excerpt_chars: int = 40_000
    """Most characters of the agent's code, trajectory or log shown to the diagnosis model."""


@dataclass
class Expansion:
    parent_id: str
    entry: str
    child_id: str | None = None
    reason: str = ""  # why it failed; empty when a child passed its tests
    diagnosis: dict[str, str] = field(default_factory=dict)
    problem_statement: str = ""
    cost: Spend = field(default_factory=Spend)
    duration_s: float = 0.0


def choose_entry(
    evaluations: Sequence[Evaluation],
    rng: random.Random,
    *,
    overflowed: Collection[tuple[str, str]] = (),
    rules: Family = "swe-bench",
) -> str | None:
    """DGM's choice of what a parent should improve: a special entry or a task, as
    `benchmark/task`. `overflowed`: the (benchmark, task) attempts whose conversation
    overflowed the model's context.

    SWE-bench: the rule above; a parent that left nothing unsolved improves on a random task
    of its own, as HGM's choose_entry does (DGM's code fails there). Polyglot runs have no
    special entries (the diagnosis picks its prompt): a random empty or failed task, or any
    task when none failed."""
    latest = {(e.benchmark, e.task): e for e in evaluations if e.status.counted}
    empty = [k for k, e in latest.items() if e.status is EvalStatus.EMPTY]
    failing = (EvalStatus.UNRESOLVED, EvalStatus.TIMEOUT)
    failed = [k for k, e in latest.items() if e.status in failing]
    if rules == "polyglot":
        entries = sorted(empty + failed) or sorted(latest)
    elif (
        latest
        and len(empty) >= EMPTY_PATCH_SHARE * len(latest)
        and (rng.random() < EMPTY_PATCH_CHANCE)
    ):
        return "solve_empty_patches"
    elif rng.random() < STOCHASTICITY_CHANCE:
        return "solve_stochasticity"
    elif any(k in overflowed for k in empty + failed) and rng.random() < CONTEXT_LENGTH_CHANCE:
        return "solve_contextlength"
    else:
        entries = sorted(failed) or sorted(latest)
    return "/".join(rng.choice(entries)) if entries else None


@dataclass(frozen=True)
class Plan:
    """What an expansion asks of the machine that runs it: the diagnosis prompt (built on the
    head, which has the parent's results), for the parent agent's code."""

    parent_id: str
    entry: str
    asked: str


@dataclass
class Attempt:
    """What an expansion brought back from where it ran (no archive there). `failure`: why
    it made no child; else `patch` is the child's change to the parent's code and `passed`
    says whether the child's own tests passed."""

    diagnosis: dict[str, str] = field(default_factory=dict)
    problem_statement: str = ""
    patch: str = ""
    trajectory: bytes = b""
    failure: str = ""
    passed: bool = False
    tests: str = ""
    """How the child's tests ended (`ok, exit 0`)."""
    tests_output: str = ""
    cost: Spend = field(default_factory=Spend)
    duration_s: float = 0.0


def expand(
    parent_id: str,
    *,
    archive: Archive,
    gateway: UnitGateway,
    new_sandbox: Callable[[SandboxSettings], Sandbox],
    tasks: TaskSource,
    settings: ExpansionSettings | None = None,
    sandbox_settings: SandboxSettings | None = None,
    run_id: str | None = None,
    rng: random.Random | None = None,
    unit_id: str = "expand",
    abandoned: Callable[[], bool] = lambda: False,
) -> Expansion:
    """One expansion, here: `plan`, `attempt`, `record`. `abandoned()` says the run gave this
    unit up: an FM call it cut short is no result."""
    s = settings or ExpansionSettings()
    planned = plan(parent_id, archive=archive, tasks=tasks, settings=s, rng=rng, run_id=run_id)
    if isinstance(planned, Expansion):
        return planned
    with tempfile.TemporaryDirectory(prefix="dgm-expand-") as tmp:
        code = Path(tmp) / "code"
        archive.git.checkout(archive.node(parent_id).commit, code)
        tried = attempt(
            planned, code, gateway=gateway, new_sandbox=new_sandbox, settings=s,
            sandbox_settings=sandbox_settings, unit_id=unit_id, abandoned=abandoned,
        )  # fmt: skip
    return record(archive, planned, tried, run_id=run_id)


def plan(
    parent_id: str,
    *,
    archive: Archive,
    tasks: TaskSource,
    settings: ExpansionSettings,
    rng: random.Random | None = None,
    run_id: str | None = None,
) -> Plan | Expansion:
    """What to improve and the diagnosis prompt for it; an expansion that failed already
    (recorded) when the parent has nothing to learn from."""
    s, rng = settings, rng or random.Random()
    evaluations = archive.evaluations(parent_id)
    overflowed = {
        (e.benchmark, e.task)
        for e in evaluations
        if e.trajectory_blob and b'"context_overflow"' in archive.blobs.get(e.trajectory_blob)
    }
    entry = choose_entry(evaluations, rng, overflowed=overflowed, rules=s.entry_rules)
    if entry is None:
        result = Expansion(parent_id, "")
        return _failed(archive, result, "the parent has no result to learn from", run_id)
    with tempfile.TemporaryDirectory(prefix="dgm-plan-") as tmp:
        code = Path(tmp) / "code"
        archive.git.checkout(archive.node(parent_id).commit, code)
        asked = diagnosis.prompt(
            entry, agent_code(code)[: s.excerpt_chars],
            _failure(entry, evaluations, archive, tasks, s.excerpt_chars),
            polyglot=s.entry_rules == "polyglot", rng=rng,
        )  # fmt: skip
    return Plan(parent_id, entry, asked)


def attempt(
    planned: Plan,
    code: Path,
    *,
    gateway: UnitGateway,
    new_sandbox: Callable[[SandboxSettings], Sandbox],
    settings: ExpansionSettings,
    sandbox_settings: SandboxSettings | None = None,
    unit_id: str = "expand",
    abandoned: Callable[[], bool] = lambda: False,
) -> Attempt:
    """Diagnose, let the parent agent in `code` (its files, changed here) rewrite itself in a
    sandbox, and run the child's own tests: what it brings back, with no archive involved."""
    s, parent_id = settings, planned.parent_id
    box = (sandbox_settings or SandboxSettings()).model_copy(
        update={"gateway_socket": gateway.socket_path}
    )
    start = time.monotonic()
    tried = Attempt()

    def failed(reason: str) -> Attempt:
        tried.failure, tried.duration_s = reason, time.monotonic() - start
        return tried

    lease = gateway.open_unit(f"{unit_id}:diagnose", node_id=parent_id)
    failure = None
    try:
        tried.diagnosis = diagnosis.diagnose(
            gateway.client(s.diagnosis_model, lease), planned.asked,
            attempts=s.diagnosis_attempts, max_tokens=s.diagnosis_max_tokens,
        )  # fmt: skip
    except FMError as error:
        if abandoned():
            raise Abandoned("the run abandoned this unit") from error
        failure = error
    finally:  # before the failure is recorded: its calls were metered and cost something
        tried.cost += gateway.close_unit(lease)
    if failure is not None:
        return failed(f"diagnosis failed: {failure}")
    tried.problem_statement = diagnosis.problem_statement(tried.diagnosis)

    with tempfile.TemporaryDirectory(prefix="dgm-expand-") as tmp:
        repo = Path(tmp) / "repo"
        shutil.copytree(code, repo, symlinks=True)
        git_repository(repo, "parent")
        lease = gateway.open_unit(f"{unit_id}:self-modify", node_id=parent_id)
        try:
            with new_sandbox(box) as sandbox:
                run = run_agent(
                    sandbox, code, repo, tried.problem_statement,
                    env=lease.env(box.gateway_port), model=s.model, limits=s.agent,
                )  # fmt: skip
        finally:
            tried.cost += gateway.close_unit(lease)
    tried.patch, tried.trajectory = run.patch, run.trajectory
    if not run.patch.strip():
        why = f"empty diff (agent: {run.result.status.value}, exit {run.result.exit_code})"
        return failed(why + run.notes())
    try:
        apply_change(run.patch, code)
    except patches.PatchError as error:
        return failed(str(error))

    with new_sandbox(box.model_copy(update={"gateway_socket": None})) as sandbox:
        sandbox.copy_in(code, "/work/agent")
        test = sandbox.exec(in_folder("/work/agent", s.test_command), timeout_s=s.test_timeout_s)
    tried.passed = test.status.value == "ok" and test.exit_code == 0
    tried.tests = f"{test.status.value}, exit {test.exit_code}"
    tried.tests_output = (test.stdout + test.stderr)[-4000:]
    tried.duration_s = time.monotonic() - start
    return tried


def record(
    archive: Archive, planned: Plan, tried: Attempt, *, run_id: str | None = None
) -> Expansion:
    """Keep what an attempt brought back: the child (the parent's code with the attempt's
    patch, applied here again), or the failure."""
    result = Expansion(
        planned.parent_id, planned.entry, diagnosis=tried.diagnosis,
        problem_statement=tried.problem_statement, cost=tried.cost,
        duration_s=tried.duration_s,
    )  # fmt: skip
    extra = {"patch": tried.patch, "trajectory": tried.trajectory}
    if tried.failure:
        return _failed(archive, result, tried.failure, run_id, **extra)
    with tempfile.TemporaryDirectory(prefix="dgm-child-") as tmp:
        code = Path(tmp) / "code"
        archive.git.checkout(archive.node(planned.parent_id).commit, code)
        try:
            changed = apply_change(tried.patch, code)
        except patches.PatchError as error:  # it applied where it ran: that machine lied
            return _failed(archive, result, str(error), run_id, **extra)
        if not tried.passed:
            result.reason = f"the child's tests fail ({tried.tests})"
        child = archive.add_node(
            code,
            parent=planned.parent_id,
            origin=Origin.SELF_MODIFICATION,
            status=NodeStatus.PENDING if tried.passed else NodeStatus.REJECTED,
            proposal=_proposal(result),
            run_id=run_id,
            meta={
                "entry": planned.entry,
                "diagnosis": result.diagnosis,
                "diff_stats": _diff_stats(changed),
                "tests_passed": tried.passed,
                "tests_output": tried.tests_output,
                "reason": result.reason,
                "fm_cost_usd": result.cost.usd,
                "fm_tokens": result.cost.tokens,
                "duration_s": round(result.duration_s, 3),
                "patch_blob": archive.blobs.put(tried.patch.encode()),
                "trajectory_blob": archive.blobs.put(tried.trajectory),
            },
        )
    result.child_id = child.id
    return result


def apply_change(patch: str, code: Path) -> list[patches.FilePatch]:
    """Apply the agent's diff to its code; PatchError says why it cannot be used."""
    try:
        changed = patches.parse(patch)
    except patches.PatchError as error:
        raise patches.PatchError(f"the diff cannot be used: {error}") from error
    if outside := _paths_outside(changed):
        raise patches.PatchError(
            f"the diff touches files outside its folder or in .git: {', '.join(outside)}"
        )
    try:
        patches.apply(changed, code)
    except patches.PatchError as error:
        raise patches.PatchError(f"the diff cannot be used: {error}") from error
    return changed


def _failure(
    entry: str,
    evaluations: Sequence[Evaluation],
    archive: Archive,
    tasks: TaskSource,
    chars: int,
) -> diagnosis.Failure | None:
    """What the parent's latest attempt at the entry's task shows (None: a special entry)."""
    if entry in diagnosis.SPECIAL_ENTRIES:
        return None
    benchmark, _, task = entry.partition("/")
    attempt = [e for e in evaluations if (e.benchmark, e.task) == (benchmark, task)][-1]

    def text(ref: str | None, tail: bool = True) -> str:
        data = archive.blobs.get(ref).decode(errors="replace") if ref else ""
        return data[-chars:] if tail else data[:chars]

    return diagnosis.Failure(
        statement=tasks.statement(benchmark, task),
        patch=text(attempt.patch_blob, tail=False),
        tests=tasks.hidden_tests(benchmark, task)[:chars],
        results=f"{attempt.status.value}\n{text(attempt.log_blob)}",
        log=text(attempt.trajectory_blob) or "(no log)",
        empty=attempt.status is EvalStatus.EMPTY,
    )


def agent_code(code: Path) -> str:
    """An agent's Python and Markdown files, each under its path, in path order. A link is
    shown as a link, never followed: the agent may have pointed it at any host file."""
    paths = sorted(
        Path(root, name).relative_to(code)
        for root, _, files in os.walk(code)  # does not enter linked folders
        for name in files
        if Path(name).suffix in (".py", ".md")
    )
    shown = []
    for relative in paths:
        path = code / relative
        if path.is_symlink():
            shown.append(f"## {relative} (a link to {os.readlink(path)}; not followed)")
        else:
            shown.append(f"## {relative}\n```\n{path.read_text(errors='replace')}```")
    return "\n\n".join(shown)


def _proposal(result: Expansion) -> str:
    """The child's commit message: the improvement's title, then the problem statement."""
    title = result.diagnosis.get("improvement_proposal", "").strip() or "Improve the agent"
    return f"# {title.splitlines()[0]}\n\n{result.problem_statement}"


def _paths_outside(changed: list[patches.FilePatch]) -> list[str]:
    """Paths of the diff that leave the agent's folder (absolute, `..`, or inside `.git`)."""
    found = {p for f in changed for p in f.paths}
    return sorted(
        p for p in found if p.startswith("/") or ".." in p.split("/") or p.split("/")[0] == ".git"
    )


def _diff_stats(changed: list[patches.FilePatch]) -> dict[str, int]:
    return {
        "files": len(changed),
        "insertions": sum(len(f.added) for f in changed),
        "deletions": sum(len(f.removed) for f in changed),
    }


def _failed(
    archive: Archive,
    result: Expansion,
    reason: str,
    run_id: str | None,
    *,
    patch: str = "",
    trajectory: bytes = b"",
) -> Expansion:
    result.reason = reason
    payload: dict[str, Any] = {
        "entry": result.entry,
        "reason": reason,
        "diagnosis": result.diagnosis,
        "problem_statement": result.problem_statement,
        "fm_cost_usd": result.cost.usd,
        "fm_tokens": result.cost.tokens,
    }
    if patch:
        payload["patch_blob"] = archive.blobs.put(patch.encode())
    if trajectory:
        payload["trajectory_blob"] = archive.blobs.put(trajectory)
    archive.append_event(
        EventKind.EXPANSION_FAILED, payload, run_id=run_id, node_id=result.parent_id
    )
    return result
