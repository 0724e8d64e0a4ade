"""The sandbox seam: what every backend (Docker, bubblewrap) offers, and its settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

GATEWAY_DIR = "/run/dgm"  # where the gateway socket's folder appears inside a sandbox


def in_folder(folder: str, command: list[str]) -> list[str]:
    """`command` run from `folder` inside the sandbox (commands start in the work directory)."""
    return ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", folder, *command]


class SandboxError(Exception):
    """A sandbox could not be used; the message is one line saying what to do."""


class Backend(StrEnum):
    AUTO = "auto"  # Docker when its engine answers, else bubblewrap
    DOCKER = "docker"
    BWRAP = "bwrap"


class ExecStatus(StrEnum):
    OK = "ok"  # the command ran to its end (whatever its exit code)
    TIMEOUT = "timeout"
    OOM = "oom"
    OUTPUT_TRUNCATED = "output-truncated"
    ERROR = "error"  # the sandbox itself failed


@dataclass(frozen=True)
class ExecResult:
    status: ExecStatus
    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float


@dataclass
class Taken:
    """What `copy_out` wrote (relative paths) and what it refused ("path: why")."""

    files: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


class SandboxSettings(BaseModel):
    """Limits every sandbox runs under. Defaults fit one 2-core machine."""

    memory_mb: int = Field(1024, ge=16)
    """Memory limit, files in the work directory included (they live in memory)."""
    cpus: float = Field(1.0, gt=0)
    """CPU share (1.0 = one core)."""
    pids: int = Field(256, ge=8)
    """Most processes and threads alive at once: a fork bomb stops here."""
    disk_mb: int = Field(512, ge=1)
    """Size of the writable work directory; the rest of the filesystem is read-only."""
    timeout_s: float = Field(600.0, gt=0)
    """Default wall-clock limit of one command."""
    output_bytes: int = Field(10_000_000, ge=1024)
    """Most bytes of stdout plus stderr kept from one command; past it the sandbox is
    stopped."""
    copy_out_bytes: int = Field(64_000_000, ge=1024)
    """Most bytes of files `copy_out` takes; files past it are refused."""
    copy_out_files: int = Field(10_000, ge=1)
    """Most files and folders `copy_out` takes; the rest are refused."""
    user: str = "1000:1000"
    """Non-root user the agent runs as."""
    runtime: str | None = None
    """Docker runtime, e.g. `runsc` for gVisor; default: Docker's own."""
    workdir: str = "/work"
    """Writable directory the agent's code and the task's files are copied into."""
    gateway_socket: str | None = None
    """Host path of the FM gateway's Unix socket, alone in its folder: mounted read-only and
    bridged to `127.0.0.1:gateway_port` inside."""
    gateway_port: int = Field(8765, ge=1024, le=65535)
    """Loopback port inside the sandbox where agents reach the gateway."""
    image: str | None = None
    """Docker image to start from (e.g. a benchmark's instance image); default: the base
    agent image. Never pulled here: it must be in the local engine."""
    writable_image: bool = False
    """Work in the image's own filesystem, writable, with no tmpfs over the work directory:
    for graders whose scripts edit a repository baked into the image. The container is
    thrown away after one use either way."""


class Sandbox(Protocol):
    """One isolated place for one unit of work. Always `close()` it (or use `with`)."""

    def copy_in(self, source: Path, target: str | None = None) -> None:
        """Copy a host folder's contents into the sandbox (default: the work directory)."""

    def exec(
        self,
        command: list[str],
        *,
        timeout_s: float | None = None,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> ExecResult:
        """Run a command in the work directory; never hangs past its timeout."""

    def copy_out(self, source: str, target: Path) -> Taken:
        """Take a folder's regular files and folders out of the sandbox into `target` (new
        or empty), its processes stopped meanwhile; links, FIFOs, unsafe names and what is
        over the limits are refused and listed, never followed. Works on a sandbox stopped
        by a timeout, OOM or output flood; raises `SandboxError` only when the sandbox itself
        is gone."""

    def close(self) -> None:
        """Destroy the sandbox and everything in it."""
