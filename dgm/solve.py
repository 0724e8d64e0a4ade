"""An archived agent at work on a person's own repository and task (`dgm solve`): what the
evolved agent is for.

The agent gets the repository's committed files at HEAD, never its uncommitted or untracked
ones (a `.env` stays on the host), as a fresh git repository in a sandbox with no network,
and reaches the model only through the FM gateway, which meters each call: those calls are
the steps shown as they happen. What it leaves is untrusted: its patch is applied, when asked,
only after the same checks a self-modification's patch gets (nothing outside the
repository, nothing in `.git`), and only to a clean work tree.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archive import Archive
from archive.errors import InvalidArgument
from archive.events import EventKind
from archive.records import Event, FMCall
from benchmarks import patches
from benchmarks.agent_run import AgentLimits, git_repository, run_agent
from dgm.expand import apply_change
from dgm.fm.providers import Providers
from dgm.gateway import Budget, Gateway, GatewaySettings, Spend
from sandbox.base import Sandbox, SandboxSettings

ASKED_CHARS = 160  # of what the model asked for, shown per step


@dataclass(frozen=True)
class Solved:
    head: str
    patch: str
    trajectory: bytes
    stop: str
    """How the agent's process ended (`ok, exit 0`, `timeout`, ...)."""
    steps: int
    spent: Spend
    duration_s: float
    refused: tuple[str, ...]


class StepView:
    """The gateway's sink for one solve: each metered call is kept in the archive and shown,
    as one step, by `show(call, step, spent so far, what the model asked for)` (from the
    gateway's writer thread). What the model asked for comes from its answer, which the
    gateway shows `asked` before settling the call."""

    def __init__(self, archive: Archive, show: Callable[[FMCall, int, Spend, str], None]):
        self._archive, self._show = archive, show
        self.steps, self.spent = 0, Spend()
        self._asked: dict[str, str] = {}  # unit -> its last answer, in a line

    def asked(self, unit: str, wire: str, body: Any) -> None:
        self._asked[unit] = requested(wire, body)

    def record_fm_call(self, call: FMCall) -> None:
        self._archive.record_fm_call(call)
        self.steps += 1
        self.spent += Spend(call.input_tokens + call.output_tokens, call.cost_usd or 0.0)
        said = self._asked.pop(call.unit_id or "", "") if call.status == "ok" else ""
        self._show(call, self.steps, self.spent, said)


def requested(wire: str, body: Any) -> str:
    """What a model's answer asks for, in one line: its tool calls (name and arguments),
    else the start of its text ("" when the answer has neither)."""
    calls, text = [], ""
    try:
        if wire == "openai":
            message = body["choices"][0]["message"]
            calls = [(c["function"]["name"], c["function"]["arguments"])
                     for c in message.get("tool_calls") or []]  # fmt: skip
            text = message.get("content") or ""
        else:
            blocks = body["content"]
            calls = [(b["name"], json.dumps(b["input"])) for b in blocks if b["type"] == "tool_use"]
            text = " ".join(b["text"] for b in blocks if b["type"] == "text")
    except (KeyError, IndexError, TypeError):
        return ""
    line = "; ".join(f"{name} {args}" for name, args in calls) or str(text)
    return " ".join(line.split())[:ASKED_CHARS]


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def head_of(repo: Path) -> str:
    """The commit the agent will work on; InvalidArgument when `repo` is no git work tree
    with one."""
    top = git(repo, "rev-parse", "--show-toplevel")
    if top.returncode or Path(top.stdout.strip()).resolve() != Path(repo).resolve():
        raise InvalidArgument(f"{repo} is not the top of a git work tree; give the repository's")
    head = git(repo, "rev-parse", "--verify", "HEAD^{commit}")
    if head.returncode:
        raise InvalidArgument(f"{repo} has no commit yet; commit the code the agent should see")
    return head.stdout.strip()


def changed_files(repo: Path) -> list[str]:
    """Tracked files with uncommitted changes (staged or not)."""
    status = git(repo, "status", "--porcelain", "--untracked-files=no")
    return [line[3:] for line in status.stdout.splitlines() if line.strip()]


def snapshot(repo: Path, head: str, target: Path) -> None:
    """The committed files at `head` as a fresh one-commit git repository in `target`."""
    target.mkdir(parents=True)
    tar = target.parent / "repo.tar"  # on disk: a repository may be larger than memory
    archived = git(repo, "archive", "--format=tar", f"--output={tar}", head)
    if archived.returncode:
        reason = archived.stderr.strip().splitlines()[-1:]
        raise InvalidArgument(f"cannot read {repo} at {head[:12]}: {' '.join(reason)}")
    with tarfile.open(tar) as files:
        files.extractall(target, filter="data")
    tar.unlink()
    git_repository(target, f"the repository at {head[:12]}")


def solve(
    archive: Archive,
    node_id: str,
    repo: Path,
    statement: str,
    *,
    model: str,
    providers: Providers,
    new_sandbox: Callable[[SandboxSettings], Sandbox],
    settings: SandboxSettings,
    limits: AgentLimits,
    budget: Budget,
    show: Callable[[FMCall, int, Spend, str], None],
) -> Solved:
    """Run the node's agent on the repository's HEAD with the statement; the FM calls are
    kept in the archive as they settle."""
    head, start = head_of(repo), time.monotonic()
    view = StepView(archive, show)
    gateway_settings = GatewaySettings(
        openai=providers.openai, anthropic=providers.anthropic, models=[model], budget=budget
    )
    with tempfile.TemporaryDirectory(prefix="dgm-solve-") as tmp:
        agent, work = Path(tmp) / "agent", Path(tmp) / "repo"
        archive.git.checkout(archive.node(node_id).commit, agent)
        snapshot(repo, head, work)
        with Gateway(gateway_settings, view, on_answer=view.asked) as gateway:
            lease = gateway.open_unit(f"solve:{node_id[:8]}", node_id=node_id)
            box = settings.model_copy(update={"gateway_socket": gateway.socket_path})
            try:
                with new_sandbox(box) as sandbox:
                    run = run_agent(
                        sandbox, agent, work, statement, env=lease.env(box.gateway_port),
                        model=model, limits=limits,
                    )  # fmt: skip
            finally:
                gateway.close_unit(lease)
        # the gateway is closed: every call has reached the view
    ended = run.result
    stop = ended.status.value + (f", exit {ended.exit_code}" if ended.exit_code is not None else "")
    return Solved(
        head, run.patch, run.trajectory, stop, view.steps, view.spent,
        time.monotonic() - start, run.refused,
    )  # fmt: skip


def apply(repo: Path, solved: Solved) -> None:
    """Apply the agent's patch to the work tree: only onto the commit it was made on, with
    no uncommitted changes, and nothing outside the repository or in `.git`."""
    if head_of(repo) != solved.head:
        raise InvalidArgument(f"{repo} moved off {solved.head[:12]} while the agent worked")
    if dirty := changed_files(repo):
        raise InvalidArgument(f"{repo} has uncommitted changes ({dirty[0]}, ...) now")
    try:
        apply_change(solved.patch, repo)
    except patches.PatchError as error:  # git applies all or nothing: the tree is as it was
        raise InvalidArgument(f"the agent's patch was not applied: {error}") from error


def keep(
    archive: Archive, node_id: str, repo: Path, task: str, model: str, solved: Solved,
    *, applied: bool,
) -> int:  # fmt: skip
    """The solve as a `solved` event of the node (its id), the patch and trajectory in blobs."""
    payload = {
        "repo": str(Path(repo).resolve()),
        "head": solved.head,
        "task": task,
        "model": model,
        "stop": solved.stop,
        "steps": solved.steps,
        "tokens": solved.spent.tokens,
        "cost_usd": solved.spent.usd,
        "duration_s": round(solved.duration_s, 3),
        "patch_blob": archive.blobs.put(solved.patch.encode()),
        "trajectory_blob": archive.blobs.put(solved.trajectory),
        "applied": applied,
    }
    return archive.append_event(EventKind.SOLVED, payload, node_id=node_id)


def kept_solve(archive: Archive, node_id: str, number: int) -> Event:
    """One of the node's kept solves (`dgm show --solve`, the web UI); InvalidArgument naming
    the ones it has when it has no `number`."""
    found = {e.id: e for e in archive.node_events(node_id, EventKind.SOLVED)}
    if number not in found:
        known = ", ".join(map(str, found)) or "none"
        raise InvalidArgument(f"node {node_id[:8]} has no solve {number} (its solves: {known})")
    return found[number]
