"""Bubblewrap sandbox, for machines without Docker.

Each command runs in fresh namespaces (no network, own PIDs, own user) over a read-only view
of the host's `/usr` only: no `/root`, `/home`, host `/etc` or host environment. The work
directory is a host folder bound at `/work`. Limits are rlimits set by `prlimit` (address
space, processes, file size), plus a host-side deadline and output cap that kill the whole
session. Weaker than Docker: memory is an address-space cap (allocations fail inside the
program rather than an OOM kill), and the disk limit bounds each file, not the folder.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from sandbox.base import GATEWAY_DIR, ExecResult, ExecStatus, SandboxError, SandboxSettings

# Run as this host user when started as root, so that the process limit means something.
RUN_AS = "nobody"
# passed as `python3 -c`, so no host path needs to be readable by the sandbox's user
BRIDGE = Path(__file__).with_name("bridge.py").read_text()


def available() -> bool:
    return shutil.which("bwrap") is not None and shutil.which("prlimit") is not None


class BwrapSandbox:
    def __init__(self, settings: SandboxSettings | None = None):
        if not available():
            raise SandboxError("bubblewrap is not installed; run `apt-get install -y bubblewrap`")
        self.settings = settings or SandboxSettings()
        self._host = Path(tempfile.mkdtemp(prefix="dgm-bwrap-"))
        self._user = pwd.getpwnam(RUN_AS) if os.geteuid() == 0 else None
        if self._user:
            os.chown(self._host, self._user.pw_uid, self._user.pw_gid)
        self._dead: str | None = None
        self._running: set[int] = set()  # process groups of commands still running

    def __enter__(self) -> BwrapSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._dead = self._dead or "closed"
        for group in list(self._running):  # a close from another thread ends them too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        shutil.rmtree(self._host, ignore_errors=True)

    # -- files -------------------------------------------------------------------------------

    def copy_in(self, source: Path, target: str | None = None) -> None:
        destination = self._host_path(target or self.settings.workdir)
        shutil.copytree(source, destination, symlinks=True, dirs_exist_ok=True)
        if self._user:
            for root, dirs, files in os.walk(destination):
                for name in [*dirs, *files]:
                    os.lchown(os.path.join(root, name), self._user.pw_uid, self._user.pw_gid)

    def copy_out(self, source: str, target: Path) -> None:
        # symlinks stay links: nothing the agent links to outside its folder is read
        shutil.copytree(self._host_path(source), target, symlinks=True, dirs_exist_ok=True)

    def _host_path(self, path: str) -> Path:
        workdir = self.settings.workdir.rstrip("/")
        if path != workdir and not path.startswith(workdir + "/"):
            raise SandboxError(f"{path} is outside the work directory {workdir}")
        host = (self._host / path[len(workdir) :].lstrip("/")).resolve()
        if not host.is_relative_to(self._host.resolve()):
            raise SandboxError(f"{path} leaves the work directory")
        return host

    # -- commands ----------------------------------------------------------------------------

    def exec(
        self,
        command: list[str],
        *,
        timeout_s: float | None = None,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> ExecResult:
        if self._dead:
            raise SandboxError(f"this sandbox was killed ({self._dead}); start a new one")
        start = time.monotonic()
        deadline = start + (timeout_s or self.settings.timeout_s)
        proc = subprocess.Popen(
            self._argv(command, env or {}),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            # bwrap's own processes are visible inside (/proc/1/environ): they get no secrets
            env={"PATH": "/usr/bin:/bin"},
            **(
                {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
                if self._user
                else {}
            ),
        )
        if stdin is not None:
            threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()
        self._running.add(proc.pid)
        try:
            with proc:
                status, out, err = self._read(proc, deadline)
                code = None
                if status is ExecStatus.OK:  # the output ended; the process may not have
                    try:
                        code = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        status = ExecStatus.TIMEOUT
                    if self._dead == "closed":  # closed under it: failed, as in Docker
                        status, code = ExecStatus.ERROR, None
                if status is not ExecStatus.OK:
                    self._dead = status.value
                    with contextlib.suppress(ProcessLookupError):  # a close killed it already
                        os.killpg(proc.pid, signal.SIGKILL)
        finally:  # a stale group id could be reused by someone else's processes
            self._running.discard(proc.pid)
        return ExecResult(
            status,
            code,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
            time.monotonic() - start,
        )

    def _argv(self, command: list[str], env: dict[str, str]) -> list[str]:
        s = self.settings
        uid, _, gid = s.user.partition(":")
        argv = [
            "prlimit",
            f"--as={s.memory_mb * 1024 * 1024}",
            f"--nproc={s.pids}",
            f"--fsize={s.disk_mb * 1024 * 1024}",
            "--core=0",
            "--",
            "bwrap",
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--uid", uid,
            "--gid", gid or uid,
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/bin", "/bin",
            "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/sbin", "/sbin",
            "--ro-bind-try", "/etc/alternatives", "/etc/alternatives",
            "--proc", "/proc",
            "--dev", "/dev",
            "--size", str(64 * 1024 * 1024), "--tmpfs", "/tmp",
            "--bind", str(self._host), s.workdir,
            "--chdir", s.workdir,
            "--cap-drop", "ALL",
        ]  # fmt: skip
        for key, value in {"HOME": s.workdir, "PATH": "/usr/bin:/bin", **env}.items():
            argv += ["--setenv", key, value]
        if s.gateway_socket:
            socket_path = f"{GATEWAY_DIR}/{os.path.basename(s.gateway_socket)}"
            argv += ["--ro-bind", os.path.dirname(s.gateway_socket), GATEWAY_DIR]
            bridge = ["python3", "-c", BRIDGE, str(s.gateway_port), socket_path, "--"]
            command = [*bridge, *command]
        return [*argv, "--", *command]

    def _read(self, proc: subprocess.Popen, deadline: float) -> tuple[ExecStatus, bytes, bytes]:
        limit = self.settings.output_bytes
        chunks = {proc.stdout: bytearray(), proc.stderr: bytearray()}
        with selectors.DefaultSelector() as selector:
            for stream in chunks:
                selector.register(stream, selectors.EVENT_READ)
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    return ExecStatus.TIMEOUT, *map(bytes, chunks.values())
                for key, _ in selector.select(left):
                    data = os.read(key.fileobj.fileno(), 1 << 16)
                    if not data:
                        selector.unregister(key.fileobj)
                    chunks[key.fileobj].extend(data)
                if sum(map(len, chunks.values())) > limit:
                    keep = limit // 2
                    return ExecStatus.OUTPUT_TRUNCATED, *(bytes(c[:keep]) for c in chunks.values())
        return ExecStatus.OK, *map(bytes, chunks.values())


def _feed(pipe, data: bytes) -> None:
    try:
        pipe.write(data)
        pipe.close()
    except OSError:
        pass  # the command exited without reading it all
