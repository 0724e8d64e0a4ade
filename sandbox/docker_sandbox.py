"""Docker sandbox: one container per unit, no network, hard limits, always removed.

The container's root filesystem is read-only; the work directory is a size-limited tmpfs.
Files go in and out as tar streams through `exec` (Docker's archive API cannot reach into a
tmpfs mount). Commands run through the exec API with a host-side deadline: a command that
outlives it, or that floods its output, gets the whole container killed, so nothing it
started lingers.
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
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from sandbox.base import GATEWAY_DIR, ExecResult, ExecStatus, SandboxError, SandboxSettings

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


def reap(client: docker.DockerClient, run_id: str | None = None) -> int:
    """Remove sandboxes a crashed run left behind (all of them, or one run's)."""
    labels = [LABEL] + ([f"dgm.run={run_id}"] if run_id else [])
    removed = 0
    for container in client.containers.list(all=True, filters={"label": labels}):
        try:
            container.remove(force=True)
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
        client: docker.DockerClient | None = None,
    ):
        self.settings = settings or SandboxSettings()
        self._client = client or connect()
        self._dead: str | None = None
        s = self.settings
        image = s.image or image  # the settings' image (a benchmark's) wins over the default
        uid, _, gid = s.user.partition(":")
        # exec: compiled languages build and run binaries in the work directory and /tmp
        owned = f"uid={uid},gid={gid or uid},mode=0755,exec"
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
                tmpfs=(
                    {}
                    if s.writable_image
                    else {s.workdir: f"size={s.disk_mb}m,{owned}", "/tmp": f"size=64m,{owned}"}
                ),
                user=s.user,
                working_dir=s.workdir,
                environment={} if s.writable_image else {"HOME": s.workdir},
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                runtime=s.runtime,
                labels={LABEL: "1", "dgm.run": run_id, "dgm.unit": unit_id},
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
        api.exec_start(api.exec_create(self._container.id, bridge)["Id"], detach=True)
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
        try:
            self._container.remove(force=True)
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

    def copy_out(self, source: str, target: Path) -> None:
        status, code, out, err, _ = self._run(["tar", "-c", "-f", "-", "-C", source, "."])
        if status is not ExecStatus.OK or code != 0:
            reason = err.decode(errors="replace").strip() or status.value
            raise SandboxError(f"copying {source} out of the sandbox failed: {reason}")
        target = Path(target)
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(out), mode="r") as tar:
            tar.extractall(target, filter="data")  # refuses paths and links leaving target

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
            raise SandboxError(f"this sandbox was killed ({self._dead}); start a new one")
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
                self._kill(status.value, raw)
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
                self._kill(status.value)
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

    def _kill(self, reason: str, stream: socket.socket | None = None) -> None:
        """Kill the container; drain the command's stream meanwhile.

        The daemon will not finish a kill while it is blocked writing a stream nobody reads,
        so the stream is read (and dropped) until the kill closes it.
        """
        self._dead = reason
        killer = threading.Thread(target=self._kill_container, daemon=True)
        killer.start()
        if stream is not None:
            # until the stream ends, or the kill is done (gVisor may leave the stream open)
            stream.settimeout(0.1)
            deadline = time.monotonic() + _DRAIN_S
            while time.monotonic() < deadline:
                try:
                    if not stream.recv(1 << 16):
                        break
                except TimeoutError:
                    if not killer.is_alive():
                        break
                except OSError:
                    break
        killer.join(_DRAIN_S)

    def _kill_container(self) -> None:
        with contextlib.suppress(APIError):  # already gone
            self._container.kill()


def _as_agent(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 1000
    info.uname = info.gname = ""
    return info
