"""Running an agent: its code and a git repository in a sandbox, its command line, and what
it leaves behind (patch and trajectory). Used for benchmark tasks and for self-modification,
where the repository is the agent's own code."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from benchmarks.base import Benchmark
from sandbox.base import ExecResult, Sandbox

# the command line every agent keeps (the seed agent's)
AGENT_COMMAND = [
    "python3", "/work/agent/coding_agent.py", "--task-file", "/work/task.md",
    "--repo", "/work/repo", "--out", "/work/out", "--model", "{model}",
    "--max-steps", "{max_steps}",
]  # fmt: skip


# what the agent is told of its own deadline: it stops starting steps a little before the
# sandbox's, so what it leaves is whole
OWN_DEADLINE_SHARE = 0.9


class AgentLimits(BaseModel):
    """How far an agent may go on one task: the one place these defaults live."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_steps: int = Field(30, ge=1)
    timeout_s: float = Field(1800.0, gt=0)
    """The sandbox's deadline for the agent's process; what it wrote by then is its result."""

    @property
    def key(self) -> str:
        """The limits as results are cached under: a result made under other limits is not
        reused."""
        return f"max_steps={self.max_steps} timeout_s={self.timeout_s:g}"


@dataclass(frozen=True)
class AgentRun:
    patch: str
    trajectory: bytes
    result: ExecResult  # how the agent's process ended
    refused: tuple[str, ...] = ()  # what of its output folder was not taken, and why

    def notes(self) -> str:
        """What a log should say about the output beyond the patch."""
        return "".join(f"\nrefused from the agent's output: {why}" for why in self.refused)


def git_repository(folder: Path, message: str = "start") -> Path:
    """Make `folder` a git repository with everything in one commit (agents diff against it)."""
    git = ["git", "-c", "user.name=dgm", "-c", "user.email=dgm@localhost", "-C", str(folder)]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", message, "--allow-empty"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return folder


def task_repository(benchmark: Benchmark, task: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    benchmark.workspace(task, folder)
    return git_repository(folder, task)


def run_agent(
    sandbox: Sandbox,
    agent: Path,
    repo: Path,
    statement: str,
    *,
    env: dict[str, str],
    model: str,
    limits: AgentLimits,
) -> AgentRun:
    """Let the agent at `agent` work on the git repository `repo` in `sandbox` (with the FM
    gateway bridged in and `env` holding the unit's lease)."""
    sandbox.copy_in(agent, "/work/agent")
    sandbox.copy_in(repo, "/work/repo")
    sandbox.exec(["sh", "-c", "cat > /work/task.md"], stdin=statement.encode())
    command = [part.format(model=model, max_steps=limits.max_steps) for part in AGENT_COMMAND]
    own = {"DGM_AGENT_TIMEOUT_S": f"{limits.timeout_s * OWN_DEADLINE_SHARE:g}"}
    result = sandbox.exec(command, env=env | own, timeout_s=limits.timeout_s)
    # taken even after a timeout: what the agent left (or broke) is its own result
    with tempfile.TemporaryDirectory(prefix="dgm-out-") as tmp:
        taken = sandbox.copy_out("/work/out", Path(tmp))

        def read(name: str) -> bytes:
            return (Path(tmp) / name).read_bytes() if name in taken.files else b""

        return AgentRun(
            read("patch.diff").decode(errors="replace"),
            read("trajectory.jsonl"),
            result,
            tuple(taken.refused),
        )
