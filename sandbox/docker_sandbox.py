"""Docker sandbox: one container per unit, no network, hard limits, always removed.

The container's root filesystem is read-only; the work directory is a size-limited tmpfs
volume (a plain tmpfs mount is invisible to Docker's archive API) and `/tmp` a tmpfs.
Commands run through the exec API as the agent's user, with a host-side deadline; the
container's own processes (its init and `sleep`) run as root without capabilities, so the
agent cannot end the container. A command that outlives its deadline, floods its output or
runs out of memory gets the whole container frozen (`docker pause`): nothing it started keeps
running, and its files can still be taken out. Files go in as a tar stream through `exec`;
they come out through the engine's archive of the frozen container, never through a process
the agent could reach, and only as regular files and folders (`sandbox.outputs`).
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import socket
import struct
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import DriverConfig, Mount

from sandbox.base import (
    GATEWAY_DIR,
    ExecResult,
    ExecStatus,
    SandboxError,
    SandboxSettings,
    Taken,
)
from sandbox.outputs import take_tar

LABEL = "dgm.sandbox"
_KILLED = 137  # 128 + SIGKILL
_DRAIN_S = 15.0
# gVisor's kernel (the sentry) runs as host threads in the container's cgroup; they count
# against the pids limit, so they get room of their own on top of the agent's.
_GVISOR_THREADS = 256
_WAIT_FOR_PORT = """
import socket, sys, time
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        break
    except OSError:
        time.sleep(0.05)
else:
    sys.exit("nothing listens on the bridge port")
"""


def connect() -> docker.DockerClient:
    """A client for the local Docker engine, or one line saying how to start it."""
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except DockerException as error:
        raise SandboxError(
            "Docker is not reachable; install it (apt-get install docker.io) and start it "
            "(dockerd --bridge=none --iptables=false &), or use --backend bwrap"
        ) from error
    return client


def reap(
    client: docker.DockerClient,
    run_id: str | None = None,
    *,
    left: Callable[[dict[str, str]], bool] = lambda labels: True,
) -> int:
    """Remove sandboxes a crashed run left behind (all of them, or one run's; of those, the
    ones whose labels `left` says were left behind)."""
    labels = [LABEL] + ([f"dgm.run={run_id}"] if run_id else [])
    removed = 0
    for container in client.containers.list(all=True, filters={"label": labels}):
        if not left(container.labels):
            continue
        try:
            container.remove(force=True, v=True)
            removed += 1
        except NotFound:
            pass
    return removed


class DockerSandbox:
    def __init__(
        self,
        image: str,
        settings: SandboxSettings | None = None,
        *,
        run_id: str = "adhoc",
        unit_id: str = "adhoc",
        labels: dict[str, str] | None = None,
        client: docker.DockerClient | None = None,
    ):
        """`labels`: more labels for the container (where and by whom it was started)."""
        self.settings = settings or SandboxSettings()
        self._client = client or connect()
        self._dead: str | None = None  # why commands are refused
        self._closed = False
        self._paused = False
        s = self.settings
        image = s.image or image  # the settings' image (a benchmark's) wins over the default
        uid, _, gid = s.user.partition(":")
        # compiled languages build and run binaries in the work directory and /tmp: a tmpfs
        # volume allows exec, and /tmp is told to (Docker's tmpfs default is noexec)
        owned = f"uid={uid},gid={gid or uid},mode=0755"
        work = DriverConfig(
            "local", {"type": "tmpfs", "device": "tmpfs", "o": f"size={s.disk_mb}m,{owned}"}
        )
        try:
            # create, not run: `run` pulls a missing image, and nothing here may reach a registry
            self._container = self._client.containers.create(
                image,
                ["sleep", "infinity"],
                init=True,  # reaps zombies; `docker rm -f` kills everything at once
                network_mode="none",
                mem_limit=f"{s.memory_mb}m",
                memswap_limit=f"{s.memory_mb}m",
                nano_cpus=int(s.cpus * 1e9),
                pids_limit=s.pids + (_GVISOR_THREADS if s.runtime == "runsc" else 0),
                read_only=not s.writable_image,
                # an anonymous volume: removed with the container
                mounts=[] if s.writable_image else [Mount(s.workdir, None, driver_config=work)],
                tmpfs={} if s.writable_image else {"/tmp": f"size=64m,{owned},exec"},
                user="0:0",  # init and `sleep`: out of the agent's reach (commands run as s.user)
                working_dir=s.workdir,
                environment={} if s.writable_image else {"HOME": s.workdir},
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                runtime=s.runtime,
                labels={**(labels or {}), LABEL: "1", "dgm.run": run_id, "dgm.unit": unit_id},
                volumes=(
                    {os.path.dirname(s.gateway_socket): {"bind": GATEWAY_DIR, "mode": "ro"}}
                    if s.gateway_socket
                    else {}
                ),
            )
        except ImageNotFound as error:
            raise SandboxError(f"image {image} is not built; build it before starting") from error
        except APIError as error:
            if s.runtime and "runtime" in str(error.explanation):
                raise SandboxError(
                    f"Docker has no runtime {s.runtime}; register it (scripts/dockerd.json) "
                    "and restart dockerd, or leave the runtime unset"
                ) from error
            raise SandboxError(
                f"cannot create a sandbox from {image}: {error.explanation}"
            ) from error
        try:
            self._container.start()
            if s.gateway_socket:
                self._start_bridge()
        except (APIError, SandboxError) as error:
            self.close()
            reason = getattr(error, "explanation", None) or str(error)
            raise SandboxError(f"cannot start a sandbox from {image}: {reason}") from error

    def _start_bridge(self) -> None:
        """Run bridge.py in the background and wait until its port answers."""
        s = self.settings
        script = Path(__file__).with_name("bridge.py").read_bytes()
        self.exec(["sh", "-c", "cat > /tmp/dgm-bridge.py"], stdin=script)
        target = f"{GATEWAY_DIR}/{os.path.basename(s.gateway_socket or '')}"
        api = self._client.api
        bridge = ["python3", "/tmp/dgm-bridge.py", str(s.gateway_port), target]
        started = api.exec_create(self._container.id, bridge, user=s.user)
        api.exec_start(started["Id"], detach=True)
        ready = self.exec(["python3", "-c", _WAIT_FOR_PORT, str(s.gateway_port)], timeout_s=15)
        if ready.exit_code != 0:
            raise SandboxError(f"the gateway bridge did not start: {ready.stderr.strip()}")

    @property
    def id(self) -> str:
        return self._container.id

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._dead = self._dead or "closed"
        self._closed = True
        if self._paused:  # gVisor cannot kill a frozen container
            with contextlib.suppress(APIError):
                self._client.api.unpause(self._container.id)
        try:
            self._container.remove(force=True, v=True)
        except NotFound:
            pass
        except APIError as error:
            if error.status_code != 409:  # 409: someone else is removing it already
                raise

    # -- files -------------------------------------------------------------------------------

    def copy_in(self, source: Path, target: str | None = None) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for entry in sorted(Path(source).iterdir()):
                tar.add(entry, arcname=entry.name, filter=_as_agent)
        unpack = 'mkdir -p "$1" && tar -x -f - -C "$1"'
        result = self.exec(
            ["sh", "-c", unpack, "sh", target or self.settings.workdir], stdin=buffer.getvalue()
        )
        if result.status is not ExecStatus.OK or result.exit_code != 0:
            raise SandboxError(f"copying {source} into the sandbox failed: {result.stderr.strip()}")

    def copy_out(self, source: str, target: Path) -> Taken:
        """Take `source`'s regular files and folders into `target` (new or empty) from the
        engine's archive of the container, every process in it frozen meanwhile."""
        if self._closed:
            raise SandboxError("this sandbox was closed; start a new one")
        api, cid = self._client.api, self._container.id
        frozen_here = not self._paused
        try:
            if frozen_here:
                api.pause(cid)
                self._paused = True
            try:
                chunks, _ = api.get_archive(cid, source)
            except NotFound:
                return Taken(refused=[f"{source}: not a folder (missing)"])
            return take_tar(
                _Stream(chunks), target, max_bytes=self.settings.copy_out_bytes,
                max_entries=self.settings.copy_out_files,
            )  # fmt: skip
        except APIError as error:
            raise SandboxError(
                f"copying {source} out of the sandbox failed: {error.explanation}"
            ) from error
        finally:
            if frozen_here and self._paused and not self._closed:
                with contextlib.suppress(APIError):
                    api.unpause(cid)
                    self._paused = False

    # -- commands ----------------------------------------------------------------------------

    def exec(
        self,
        command: list[str],
        *,
        timeout_s: float | None = None,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> ExecResult:
        status, code, out, err, duration = self._run(command, timeout_s, env, stdin)
        return ExecResult(
            status, code, out.decode(errors="replace"), err.decode(errors="replace"), duration
        )

    def _run(
        self,
        command: list[str],
        timeout_s: float | None = None,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> tuple[ExecStatus, int | None, bytes, bytes, float]:
        if self._dead:
            raise SandboxError(f"this sandbox was stopped ({self._dead}); start a new one")
        api = self._client.api
        start = time.monotonic()
        deadline = start + (timeout_s or self.settings.timeout_s)
        try:
            exec_id = api.exec_create(
                self._container.id,
                command,
                stdin=stdin is not None,
                environment=env,
                workdir=self.settings.workdir,
                user=self.settings.user,
            )["Id"]
            sock = api.exec_start(exec_id, socket=True)
        except APIError as error:
            return ExecStatus.ERROR, None, b"", str(error).encode(), time.monotonic() - start
        raw: socket.socket = getattr(sock, "_sock", sock)
        try:
            if stdin is not None:
                raw.sendall(stdin)
                raw.shutdown(socket.SHUT_WR)
            status, out, err = self._read(raw, deadline)
            if status is not ExecStatus.OK:
                self._freeze(status.value, raw)
        finally:
            sock.close()
        code = None
        if status is ExecStatus.OK:
            try:
                code = api.exec_inspect(exec_id)["ExitCode"]
            except APIError as error:  # the container is gone
                return (
                    ExecStatus.ERROR,
                    None,
                    out,
                    err + str(error).encode(),
                    time.monotonic() - start,
                )
            if code is None:  # the stream ended but the command did not: the container died
                return ExecStatus.ERROR, None, out, err, time.monotonic() - start
            if code == _KILLED and self._oom_killed():
                status = ExecStatus.OOM
                self._freeze(status.value)
            elif code == _KILLED and not self._alive():
                self._dead = "its container died"
                return ExecStatus.ERROR, None, out, err, time.monotonic() - start
        return status, code, out, err, time.monotonic() - start

    def _read(self, raw: socket.socket, deadline: float) -> tuple[ExecStatus, bytes, bytes]:
        """Demultiplex Docker's framed stream (8-byte header per frame) until EOF or a limit."""
        limit = self.settings.output_bytes
        buffer, streams = b"", {1: bytearray(), 2: bytearray()}
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return ExecStatus.TIMEOUT, bytes(streams[1]), bytes(streams[2])
            ready, _, _ = select.select([raw], [], [], min(left, 0.5))
            if self._dead:  # closed from another thread (gVisor may keep the stream open)
                return ExecStatus.ERROR, bytes(streams[1]), bytes(streams[2])
            if not ready:
                continue
            chunk = raw.recv(1 << 16)
            if not chunk:
                return ExecStatus.OK, bytes(streams[1]), bytes(streams[2])
            buffer += chunk
            while len(buffer) >= 8:
                kind, size = struct.unpack(">BxxxL", buffer[:8])
                if len(buffer) < 8 + size:
                    break
                streams.get(kind, streams[2]).extend(buffer[8 : 8 + size])
                buffer = buffer[8 + size :]
            if len(streams[1]) + len(streams[2]) > limit:
                keep = limit // 2
                return (
                    ExecStatus.OUTPUT_TRUNCATED,
                    bytes(streams[1][:keep]),
                    bytes(streams[2][:keep]),
                )

    def _oom_killed(self) -> bool:
        """Did the kernel's OOM killer act in this container (cgroup v1 or v2)?"""
        cid = self._container.id
        for path in (
            f"/sys/fs/cgroup/memory/docker/{cid}/memory.oom_control",
            f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/memory.events",
            f"/sys/fs/cgroup/docker/{cid}/memory.events",
        ):
            if os.path.exists(path):
                with open(path) as f:
                    for line in f:
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value) > 0:
                            return True
                return False
        self._container.reload()
        return bool(self._container.attrs["State"].get("OOMKilled"))

    def _alive(self) -> bool:
        """Is the container still running? (Asked after a SIGKILL exit: the engine may take a
        moment to mark a container killed from outside as stopped.)"""
        deadline = time.monotonic() + 0.5
        while True:
            try:
                self._container.reload()
            except NotFound:
                return False
            if not self._container.attrs["State"]["Running"]:
                return False
            if time.monotonic() > deadline:
                return True
            time.sleep(0.05)

    def _freeze(self, reason: str, stream: socket.socket | None = None) -> None:
        """Freeze every process in the container (its files stay readable); refuse further
        commands. The command's stream is drained meanwhile: the daemon may be blocked
        writing a stream nobody reads."""
        self._dead = reason
        freezer = threading.Thread(target=self._pause_container, daemon=True)
        freezer.start()
        if stream is not None:
            # until the stream ends, or the freeze is done (the frozen command never ends it)
            stream.settimeout(0.1)
            deadline = time.monotonic() + _DRAIN_S
            while time.monotonic() < deadline:
                try:
                    if not stream.recv(1 << 16):
                        break
                except TimeoutError:
                    if not freezer.is_alive():
                        break
                except OSError:
                    break
        freezer.join(_DRAIN_S)

    def _pause_container(self) -> None:
        try:
            self._client.api.pause(self._container.id)
            self._paused = True
        except APIError:  # already gone, or cannot be frozen: then nothing may run on
            with contextlib.suppress(APIError):
                self._container.kill()


class _Stream(io.RawIOBase):
    """The chunks of Docker's archive stream as a file, for `tarfile`'s stream mode."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks, self._left = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._left:
            self._left = next(self._chunks, b"")
            if not self._left:
                return 0
        size = min(len(buffer), len(self._left))
        buffer[:size], self._left = self._left[:size], self._left[size:]
        return size


def _as_agent(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 1000
    info.uname = info.gname = ""
    return info
