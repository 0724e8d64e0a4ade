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
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from archive import Archive
from archive.records import EvalStatus, Evaluation, NodeStatus, Origin
from benchmarks import patches
from benchmarks.agent_run import git_repository, run_agent
from dgm.fm.client import FMClient, first_json_object
from dgm.fm.errors import FMError
from dgm.gateway import Gateway, Spend
from dgm.sandbox_pool import Abandoned
from sandbox.base import Sandbox, SandboxSettings, in_folder

SEED_AGENT = Path(__file__).with_name("seed_agent")

# DGM's special entries: problems of the agent as a whole rather than of one task
SPECIAL_ENTRIES = {
    "solve_empty_patches": (
        "The coding agent sometimes ends without changing any file, so its patch is empty. "
        "Make sure it always attempts a change: for example, check before stopping that the "
        "repository has a diff, and if not, go back to work on the task."
    ),
    "solve_stochasticity": (
        "The coding agent's results vary from run to run on the same task. Make it more "
        "reliable: for example, let it produce several candidate patches and choose the best "
        "one by running the available tests."
    ),
    "solve_contextlength": (
        "The coding agent exceeded the model's context window on some tasks. Make it manage "
        "its context: for example, summarise or drop old tool outputs before the limit is hit."
    ),
}
EntryRules = Literal["swe-bench", "polyglot"]
EMPTY_PATCH_SHARE = 0.1
STOCHASTICITY_CHANCE = 0.25
CONTEXT_LENGTH_CHANCE = 0.5

DIAGNOSIS_FORMAT = """Answer with one JSON object with these string fields:
"log_summarization": what the agent did and where it went wrong;
"potential_improvements": general changes to the agent that could help;
"improvement_proposal": the one improvement to make now;
"implementation_suggestion": how to implement it in the agent's code;
"problem_description": the improvement written as a task for a coding agent."""


DIAGNOSIS_FIELDS = (
    "log_summarization", "potential_improvements", "improvement_proposal",
    "implementation_suggestion", "problem_description",
)  # fmt: skip
DIAGNOSIS_SCHEMA = {
    "type": "object",
    "properties": {field: {"type": "string"} for field in DIAGNOSIS_FIELDS},
    "required": list(DIAGNOSIS_FIELDS),
}


class TaskSource(Protocol):
    """Where task statements come from (a benchmark)."""

    def statement(self, benchmark: str, task: str) -> str: ...


class ExpansionSettings(BaseModel):
    model: str = "gpt-4o"
    """The model the parent agent runs with while it rewrites itself."""
    diagnosis_model: str = "gpt-4o"
    entry_rules: EntryRules = "swe-bench"
    """DGM's rules for what to improve: SWE-bench's (with special entries) or Polyglot's."""
    test_command: list[str] = ["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    """The agent's own tests, run in its folder."""
    max_steps: int = 50
    agent_timeout_s: float = 3600.0
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
    context_overflowed: bool = False,
    rules: EntryRules = "swe-bench",
) -> str | None:
    """DGM's choice of what a parent should improve: a special entry or a failed task.

    Polyglot runs have no special entries: a random empty or failed task, or any task when
    none failed."""
    latest = {(e.benchmark, e.task): e for e in evaluations if e.status.counted}
    empty = [k for k, e in latest.items() if e.status is EvalStatus.EMPTY]
    failing = (EvalStatus.UNRESOLVED, EvalStatus.TIMEOUT)
    failed = [k for k, e in latest.items() if e.status in failing]
    if rules == "polyglot":
        entries = sorted(empty + failed) or sorted(latest)
        return "/".join(rng.choice(entries)) if entries else None
    if latest and len(empty) >= EMPTY_PATCH_SHARE * len(latest):
        return "solve_empty_patches"
    if rng.random() < STOCHASTICITY_CHANCE:
        return "solve_stochasticity"
    if context_overflowed and rng.random() < CONTEXT_LENGTH_CHANCE:
        return "solve_contextlength"
    if not failed:
        return None
    benchmark, task = rng.choice(sorted(failed))
    return f"{benchmark}/{task}"


def expand(
    parent_id: str,
    *,
    archive: Archive,
    gateway: Gateway,
    new_sandbox: Callable[[SandboxSettings], Sandbox],
    tasks: TaskSource,
    settings: ExpansionSettings | None = None,
    sandbox_settings: SandboxSettings | None = None,
    run_id: str | None = None,
    rng: random.Random | None = None,
    unit_id: str = "expand",
    abandoned: Callable[[], bool] = lambda: False,
) -> Expansion:
    """`abandoned()` says the run gave this unit up: an FM call it cut short is no result."""
    s, rng = settings or ExpansionSettings(), rng or random.Random()
    box = (sandbox_settings or SandboxSettings()).model_copy(
        update={"gateway_socket": gateway.socket_path}
    )
    start = time.monotonic()
    evaluations = archive.evaluations(parent_id)
    overflowed = any(
        b'"context_overflow"' in archive.blobs.get(e.trajectory_blob)
        for e in evaluations
        if e.trajectory_blob
    )
    entry = choose_entry(evaluations, rng, context_overflowed=overflowed, rules=s.entry_rules)
    result = Expansion(parent_id, entry or "")
    if entry is None:
        return _failed(archive, result, "the parent has no failed task to learn from", run_id)
    with tempfile.TemporaryDirectory(prefix="dgm-expand-") as tmp:
        work = Path(tmp)
        code = work / "code"
        archive.git.checkout(archive.node(parent_id).commit, code)
        lease = gateway.open_unit(f"{unit_id}:diagnose", node_id=parent_id)
        try:
            result.diagnosis = _diagnose(
                entry,
                code,
                evaluations,
                archive,
                tasks,
                gateway.client(s.diagnosis_model, lease),
                s,
            )
        except FMError as error:
            if abandoned():
                raise Abandoned("the run abandoned this unit") from error
            return _failed(archive, result, f"diagnosis failed: {error}", run_id)
        finally:
            result.cost = _plus(result.cost, gateway.close_unit(lease))
        result.problem_statement = _problem_statement(result.diagnosis)

        repo = work / "repo"
        archive.git.checkout(archive.node(parent_id).commit, repo)
        git_repository(repo, "parent")
        lease = gateway.open_unit(f"{unit_id}:self-modify", node_id=parent_id)
        try:
            with new_sandbox(box) as sandbox:
                run = run_agent(
                    sandbox,
                    code,
                    repo,
                    result.problem_statement,
                    env=lease.env(box.gateway_port),
                    model=s.model,
                    max_steps=s.max_steps,
                    timeout_s=s.agent_timeout_s,
                )
        finally:
            result.cost = _plus(result.cost, gateway.close_unit(lease))
        patch, trajectory = run.patch, run.trajectory
        result.duration_s = time.monotonic() - start
        if not patch.strip():
            why = f"empty diff (agent: {run.result.status.value}, exit {run.result.exit_code})"
            why += run.notes()
            return _failed(archive, result, why, run_id, trajectory=trajectory)
        try:
            changed = patches.parse(patch)
            if outside := _paths_outside(changed):
                why = f"the diff touches files outside the agent tree: {', '.join(outside)}"
                return _failed(archive, result, why, run_id, patch=patch, trajectory=trajectory)
            patches.apply(changed, code)
        except patches.PatchError as error:
            why = f"the diff cannot be used: {error}"
            return _failed(archive, result, why, run_id, patch=patch, trajectory=trajectory)

        with new_sandbox(box.model_copy(update={"gateway_socket": None})) as sandbox:
            sandbox.copy_in(code, "/work/agent")
            test = sandbox.exec(
                in_folder("/work/agent", s.test_command),
                timeout_s=s.test_timeout_s,
            )
        passed = test.status.value == "ok" and test.exit_code == 0
        if not passed:
            result.reason = f"the child's tests fail ({test.status.value}, exit {test.exit_code})"
        result.duration_s = time.monotonic() - start
        child = archive.add_node(
            code,
            parent=parent_id,
            origin=Origin.SELF_MODIFICATION,
            status=NodeStatus.PENDING if passed else NodeStatus.REJECTED,
            proposal=result.problem_statement,
            run_id=run_id,
            meta={
                "entry": entry,
                "diagnosis": result.diagnosis,
                "diff_stats": _diff_stats(changed),
                "tests_passed": passed,
                "tests_output": (test.stdout + test.stderr)[-4000:],
                "reason": result.reason,
                "fm_cost_usd": result.cost.usd,
                "fm_tokens": result.cost.tokens,
                "duration_s": round(result.duration_s, 3),
                "patch_blob": archive.blobs.put(patch.encode()),
                "trajectory_blob": archive.blobs.put(trajectory),
            },
        )
        result.child_id = child.id
        return result


def _diagnose(
    entry: str,
    code: Path,
    evaluations: Sequence[Evaluation],
    archive: Archive,
    tasks: TaskSource,
    client: FMClient,
    s: ExpansionSettings,
) -> dict[str, str]:
    if entry in SPECIAL_ENTRIES:
        text = SPECIAL_ENTRIES[entry]
        return {"improvement_proposal": entry.replace("_", " "), "problem_description": text}
    benchmark, _, task = entry.partition("/")
    attempt = [e for e in evaluations if (e.benchmark, e.task) == (benchmark, task)][-1]
    parts = [
        "# The coding agent's code\n" + agent_code(code)[: s.excerpt_chars],
        "# The task it failed\n" + tasks.statement(benchmark, task),
        f"# Result: {attempt.status.value}",
    ]
    records = (("trajectory", attempt.trajectory_blob), ("evaluation log", attempt.log_blob))
    for title, ref in records:
        if ref:
            text = archive.blobs.get(ref).decode(errors="replace")
            parts.append(f"# The agent's {title}\n" + text[-s.excerpt_chars :])
    messages = [{"role": "user", "content": "\n\n".join(parts) + "\n\n" + DIAGNOSIS_FORMAT}]
    system = "You improve coding agents by diagnosing their failures. Answer in JSON only."
    for _ in range(s.diagnosis_attempts):
        answer = client.complete(
            messages, system=system, max_tokens=s.diagnosis_max_tokens, json_schema=DIAGNOSIS_SCHEMA
        )
        diagnosis = first_json_object(answer.text)
        if diagnosis and diagnosis.get("problem_description"):
            return {k: str(v) for k, v in diagnosis.items()}
        messages += [
            {"role": "assistant", "content": answer.text},
            {"role": "user", "content": "That was not the JSON asked for. " + DIAGNOSIS_FORMAT},
        ]
    raise FMError(f"no usable diagnosis in {s.diagnosis_attempts} answers")


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


def _problem_statement(diagnosis: dict[str, str]) -> str:
    title = diagnosis.get("improvement_proposal", "").strip() or "Improve the coding agent"
    body = [
        f"# {title.splitlines()[0]}",
        diagnosis.get("problem_description", "").strip(),
        diagnosis.get("implementation_suggestion", "").strip(),
        "This repository is the coding agent's own code. Keep its command line and its tests "
        "(`python3 -m pytest -q tests`) working, and add a test for the change.",
    ]
    return "\n\n".join(part for part in body if part) + "\n"


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
    archive.append_event("expansion_failed", payload, run_id=run_id, node_id=result.parent_id)
    return result


def _plus(a: Spend, b: Spend) -> Spend:
    return Spend(a.tokens + b.tokens, a.usd + b.usd)
