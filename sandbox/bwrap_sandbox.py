"""Bubblewrap sandbox, for machines without Docker.

Each command runs in fresh namespaces (no network, own PIDs, own user, and no nested user
namespaces) over a read-only root holding only the host's `/usr`: no `/root`, `/home`, host
`/etc` or host environment. Writable are `/tmp` and `/dev/shm` (sized tmpfs) and the work
directory, a host folder bound at `/work`. When this process may mount (root with
CAP_SYS_ADMIN) that folder is a tmpfs of `disk_mb`; otherwise only each file is limited (to
`disk_mb`), not the folder, and `dgm sandbox doctor` says so. A seccomp filter refuses the
syscalls a coding agent never needs (ptrace, mount, namespaces, keyrings, bpf, io_uring...).
Limits are rlimits set by `prlimit` (address space, processes, file size), plus a host-side
deadline and output cap that kill the whole session. Weaker than Docker: memory is an
address-space cap (allocations fail inside the program rather than an OOM kill), and the
tmpfs folders are not counted in it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
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

from sandbox import outputs
from sandbox.base import GATEWAY_DIR, ExecResult, ExecStatus, SandboxError, SandboxSettings, Taken

# Run as this host user when started as root, so that the process limit means something.
RUN_AS = "nobody"
# passed as `python3 -c`, so no host path needs to be readable by the sandbox's user
BRIDGE = Path(__file__).with_name("bridge.py").read_text()
SCRATCH_BYTES = 64 * 1024 * 1024  # each of /tmp and /dev/shm

# Syscalls a coding agent never needs, each more of the kernel for an exploit to reach.
DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev",
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "mount_setattr",
    "fsopen", "fsmount", "fsconfig", "fspick",
    "unshare", "setns",
    "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "lookup_dcookie", "open_by_handle_at", "name_to_handle_at",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "vhangup",
    "chroot", "sethostname", "setdomainname",
)  # fmt: skip
# clone's flags that make a namespace: NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
CLONE_NAMESPACES = (0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000)
PERSONALITY_QUERY = 0xFFFFFFFF

_libc = ctypes.CDLL(None, use_errno=True)
MS_NOSUID, MS_NODEV, MNT_DETACH = 2, 4, 2


def available() -> bool:
    return shutil.which("bwrap") is not None and shutil.which("prlimit") is not None


@functools.cache
def seccomp_program() -> bytes:
    """The BPF filter bwrap loads before each command (built once per process). Syscalls of
    another architecture (32-bit `int 0x80`) kill the caller: libseccomp's default."""
    try:
        import pyseccomp as sc
    except (ImportError, RuntimeError) as error:  # RuntimeError: no libseccomp
        raise SandboxError("libseccomp is missing; run `apt-get install -y libseccomp2`") from error
    deny = sc.ERRNO(errno.EPERM)
    program = sc.SyscallFilter(sc.ALLOW)
    for name in DENIED_SYSCALLS:
        program.add_rule(deny, name)
    for flag in CLONE_NAMESPACES:
        program.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    # clone3's flags are in memory, out of a filter's sight: ENOSYS makes libc fall back to clone
    program.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    # reading it only: setting flags such as ADDR_NO_RANDOMIZE (no ASLR) helps an exploit
    program.add_rule(deny, "personality", sc.Arg(0, sc.NE, PERSONALITY_QUERY))
    with tempfile.TemporaryFile() as file:
        program.export_bpf(file)
        file.seek(0)
        return file.read()


def _mount_tmpfs(path: Path, size_mb: int) -> bool:
    """Mount a tmpfs of `size_mb` on `path`; False when this process may not mount."""
    options = f"size={size_mb}m,mode=0700".encode()
    if _libc.mount(b"tmpfs", bytes(path), b"tmpfs", MS_NOSUID | MS_NODEV, options) == 0:
        return True
    if (error := ctypes.get_errno()) == errno.EPERM:
        return False
    raise SandboxError(f"cannot mount a tmpfs on {path}: {os.strerror(error)}")


def _unmount(path: Path) -> None:
    # detached at once even while a killed command's namespace still holds it
    if _libc.umount2(bytes(path), MNT_DETACH) != 0:
        error = ctypes.get_errno()
        raise SandboxError(f"cannot unmount {path}: {os.strerror(error)}")


_PREFIX = "dgm-bwrap-"


def reap() -> int:
    """Unmount and remove the work folders of sandboxes whose process died without closing
    them (a tmpfs left mounted would hold its memory until the machine restarts)."""
    removed = 0
    for folder in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        pid = folder.name.removeprefix(_PREFIX).split("-", 1)[0]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        with contextlib.suppress(SandboxError, OSError):
            if os.path.ismount(folder):
                _unmount(folder)
            shutil.rmtree(folder)
            removed += 1
    return removed


def protections() -> dict[str, str]:
    """What holds an agent in a sandbox made by this process, in words (`dgm sandbox doctor`)."""
    with BwrapSandbox() as sandbox:
        disk = sandbox.settings.disk_mb
        work = (
            f"tmpfs of disk_mb ({disk} MB)"
            if sandbox.work_tmpfs
            else f"each file up to disk_mb ({disk} MB), not the folder: may not mount "
            "(needs root with CAP_SYS_ADMIN)"
        )
    return {
        "root": f"read-only; /tmp and /dev/shm: tmpfs of {SCRATCH_BYTES >> 20} MB",
        "work directory": work,
        "seccomp": f"{len(DENIED_SYSCALLS)} syscalls, new namespaces, clone3, personality refused",
        "user namespaces": "no nested ones",
        "environment": "on no command line",
    }


class BwrapSandbox:
    def __init__(self, settings: SandboxSettings | None = None):
        if not available():
            raise SandboxError("bubblewrap is not installed; run `apt-get install -y bubblewrap`")
        self.settings = settings or SandboxSettings()
        self._seccomp = seccomp_program()
        reap()
        # named for this process, so that one started after a crash can clean up after it
        self._host = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
        try:  # True: the folder is a tmpfs of disk_mb; False: only each file is limited
            self.work_tmpfs = _mount_tmpfs(self._host, self.settings.disk_mb)
        except SandboxError:
            self._host.rmdir()
            raise
        self._user = pwd.getpwnam(RUN_AS) if os.geteuid() == 0 else None
        if self._user:
            os.chown(self._host, self._user.pw_uid, self._user.pw_gid)
        self._closing = threading.Lock()
        self._dead: str | None = None
        self._running: set[int] = set()  # process groups of commands still running

    def __enter__(self) -> BwrapSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._dead = "closed"
        self._stop_all()  # a close from another thread ends them too
        with self._closing:  # a second close, from any thread, finds nothing left to undo
            if os.path.ismount(self._host):
                _unmount(self._host)
            shutil.rmtree(self._host, ignore_errors=True)

    def _stop_all(self) -> None:
        for group in list(self._running):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)

    # -- files -------------------------------------------------------------------------------

    def copy_in(self, source: Path, target: str | None = None) -> None:
        relative = self._relative(target or self.settings.workdir)
        try:  # a link the agent left in the way is never written through
            os.close(outputs.open_folder(self._host, relative))
        except FileNotFoundError:
            pass  # made below; a missing part cannot be a link
        except OSError as error:
            raise SandboxError(f"cannot copy into {target}: {error.strerror}") from error
        destination = self._host / relative
        shutil.copytree(source, destination, symlinks=True, dirs_exist_ok=True)
        if self._user:  # the folders made on the way too, or the agent could not enter them
            parts = Path(relative).parts
            made = [self._host.joinpath(*parts[: i + 1]) for i in range(len(parts))]
            for root, dirs, files in os.walk(destination):
                made += [Path(root, name) for name in [*dirs, *files]]
            for path in made:
                os.lchown(path, self._user.pw_uid, self._user.pw_gid)

    def copy_out(self, source: str, target: Path) -> Taken:
        if self._dead == "closed":
            raise SandboxError("this sandbox was closed; start a new one")
        self._stop_all()  # nothing may change the folder while it is read
        return outputs.take_tree(
            self._host, self._relative(source), target,
            max_bytes=self.settings.copy_out_bytes, max_entries=self.settings.copy_out_files,
        )  # fmt: skip

    def _relative(self, path: str) -> str:
        """`path` (inside the sandbox) relative to the work directory."""
        workdir = self.settings.workdir.rstrip("/")
        if path != workdir and not path.startswith(workdir + "/"):
            raise SandboxError(f"{path} is outside the work directory {workdir}")
        relative = path[len(workdir) :].strip("/")
        if ".." in relative.split("/"):
            raise SandboxError(f"{path} leaves the work directory")
        return relative

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
        seccomp = os.memfd_create("seccomp")
        try:
            os.write(seccomp, self._seccomp)
            os.lseek(seccomp, 0, os.SEEK_SET)
            proc = subprocess.Popen(
                self._argv(command, seccomp),
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                pass_fds=(seccomp,),
                # bwrap hands its own environment on: values stay off every command line (a
                # token in argv shows in `ps` and inside in /proc/1/cmdline); nothing of the
                # host's is in it
                env={"HOME": self.settings.workdir, "PATH": "/usr/bin:/bin", **(env or {})},
                **(
                    {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
                    if self._user
                    else {}
                ),
            )
        finally:
            os.close(seccomp)
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

    def _argv(self, command: list[str], seccomp: int) -> list[str]:
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
            "--unshare-user", "--disable-userns",  # no nested user namespaces either
            "--die-with-parent",
            "--new-session",
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
            "--size", str(SCRATCH_BYTES), "--tmpfs", "/tmp",
            "--size", str(SCRATCH_BYTES), "--tmpfs", "/dev/shm",
            "--bind", str(self._host), s.workdir,
            "--chdir", s.workdir,
            "--cap-drop", "ALL",
            "--seccomp", str(seccomp),
        ]  # fmt: skip
        if s.gateway_socket:
            socket_path = f"{GATEWAY_DIR}/{os.path.basename(s.gateway_socket)}"
            argv += ["--ro-bind", os.path.dirname(s.gateway_socket), GATEWAY_DIR]
            bridge = ["python3", "-c", BRIDGE, str(s.gateway_port), socket_path, "--"]
            command = [*bridge, *command]
        # after every mount: bwrap's own root and /dev are unsized tmpfs, writable until now
        argv += ["--remount-ro", "/dev", "--remount-ro", "/"]
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
