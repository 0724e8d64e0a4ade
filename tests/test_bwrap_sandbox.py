"""What only the bubblewrap backend does: rlimits, host paths, folder escapes, its read-only
root, sized work directory, seccomp filter and environment kept off command lines. Each attack
sits beside the honest work it must not break."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from sandbox import bwrap_sandbox
from sandbox.base import ExecStatus, SandboxError, SandboxSettings
from sandbox.bwrap_sandbox import BwrapSandbox
from tests.conftest import run_dgm

SETTINGS = SandboxSettings(memory_mb=256, pids=64, disk_mb=16, timeout_s=20)
# runtimes that reserve gigabytes of address space up front (V8, Go)
ROOMY = SETTINGS.model_copy(update={"memory_mb": 16384, "disk_mb": 256, "timeout_s": 120})

# writes COUNT files of SIZE bytes into FOLDER, stopping at the first refusal; prints why and
# how many were written
FILL = """
import os, sys
folder, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
written = 0
try:
    for i in range(count):
        with open(os.path.join(folder, f"fill{i}"), "wb") as file:
            file.write(bytes(size))
        written += 1
except OSError as error:
    print(error.strerror)
print(written)
"""


@pytest.fixture
def sandbox():
    with BwrapSandbox(SETTINGS) as sb:
        yield sb


def fill(sandbox, folder: str, count: int, size: int = 1 << 20) -> tuple[int, str]:
    """How many files of `size` bytes could be written into `folder`, and why it stopped."""
    lines = sandbox.exec(["python3", "-c", FILL, folder, str(count), str(size)]).stdout.split("\n")
    return int(lines[-2]), "\n".join(lines[:-2])


def mounted(sandbox) -> bool:
    """Whether the host folder behind the sandbox's /work is a mount point here."""
    with open("/proc/self/mounts") as mounts:
        return str(sandbox._host) in {line.split()[1] for line in mounts}


def test_no_host_home_or_config(sandbox):
    assert sandbox.exec(["ls", "/root", "/home", "/etc/passwd"]).exit_code != 0


def test_memory_bomb_fails_inside(sandbox):
    result = sandbox.exec(["python3", "-c", "x = bytearray(10 * 256 * 1024 * 1024)"])
    assert result.exit_code != 0 and "MemoryError" in result.stderr


def test_file_size_limit(sandbox):
    result = sandbox.exec(["sh", "-c", "dd if=/dev/zero of=big bs=1M count=100; echo rc=$?"])
    assert "rc=0" not in result.stdout


def test_nothing_outside_work_and_scratch_is_writable(sandbox):
    # many files of 1 MB, so that the per-file limit is not what stops them
    for folder in ("/", "/etc", "/dev", "/usr"):
        assert fill(sandbox, folder, 200) == (0, "Read-only file system"), folder
    for folder in ("/tmp", "/dev/shm"):  # sized tmpfs: honest writes fit, a flood stops
        assert fill(sandbox, folder, 8) == (8, "")
        written, why = fill(sandbox, folder, 200)
        assert written <= 64 and why == "No space left on device"
    assert fill(sandbox, "/work", 8) == (8, "")


def test_work_directory_holds_disk_mb_in_all(sandbox):
    if os.geteuid() == 0:  # root here may mount: the folder, not only each file, is limited
        assert sandbox.work_tmpfs
    if not sandbox.work_tmpfs:
        pytest.skip("this process may not mount: only each file is limited")
    assert fill(sandbox, "/work", 1, 12 << 20) == (1, "")  # one file under the limit
    sandbox.exec(["rm", "fill0"])
    written, why = fill(sandbox, "/work", 5000, 16 << 10)  # many small ones: 80 MB
    assert written <= 1024 and why == "No space left on device"


def test_without_mounting_each_file_is_still_limited(monkeypatch, tmp_path):
    if shutil.which("setpriv") and os.geteuid() == 0:  # root without CAP_SYS_ADMIN may not
        probe = (
            "import sys; from pathlib import Path; from sandbox.bwrap_sandbox import "
            "_mount_tmpfs; print(_mount_tmpfs(Path(sys.argv[1]), 1))"
        )
        drop = ["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin"]
        answer = subprocess.run([*drop, sys.executable, "-c", probe, tmp_path], capture_output=True)
        assert answer.stdout == b"False\n", answer.stderr
    monkeypatch.setattr(bwrap_sandbox, "_mount_tmpfs", lambda path, size_mb: False)
    assert bwrap_sandbox.protections()["work directory"].startswith("each file up to disk_mb")
    with BwrapSandbox(SETTINGS) as sandbox:
        assert not sandbox.work_tmpfs and not mounted(sandbox)
        assert fill(sandbox, "/work", 1, 8 << 20) == (1, "")
        big = sandbox.exec(["sh", "-c", "dd if=/dev/zero of=big bs=1M count=100; echo rc=$?"])
        assert "rc=0" not in big.stdout


def test_close_leaves_no_mount_behind():
    sandbox = BwrapSandbox(SETTINGS)
    assert mounted(sandbox) == sandbox.work_tmpfs
    result = sandbox.exec(["sh", "-c", "sleep 600 & sleep 600"], timeout_s=1)
    assert result.status is ExecStatus.TIMEOUT
    closers = [threading.Thread(target=sandbox.close) for _ in range(3)]  # at once, and again
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join()
    sandbox.close()
    assert not mounted(sandbox) and not sandbox._host.exists()


def test_a_crashed_process_s_sandboxes_are_reaped(tmp_path):
    # a process that made a sandbox and died without closing it
    script = (
        "import os, sys\nsys.path.insert(0, sys.argv[1])\n"
        "from sandbox.bwrap_sandbox import BwrapSandbox\n"
        "print(BwrapSandbox()._host, flush=True)\nos._exit(9)\n"
    )
    made = subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parents[1])],
        capture_output=True, text=True,
    )  # fmt: skip
    left = Path(made.stdout.strip())
    assert left.is_dir() and os.path.ismount(left)
    with BwrapSandbox(SETTINGS):  # the next one cleans up after it
        assert not left.exists()


# Arguments chosen so that, without the filter, each call would succeed or fail otherwise.
ATTACKS = {
    "ptrace": [0, 0, 0, 0],  # PTRACE_TRACEME: be traced by the parent
    "process_vm_readv": [1, 0, 0, 0, 0, 0],
    "mount": [0, 0, 0, 0, 0],
    "umount2": [0, 0],
    "open_tree": [-1, 0, 0],
    "unshare": [0x10000000],  # CLONE_NEWUSER
    "setns": [-1, 0],
    "clone": [0x10000000 | 17, 0, 0, 0, 0],  # CLONE_NEWUSER | SIGCHLD
    "keyctl": [0, -3, 0],  # KEYCTL_GET_KEYRING_ID of the session keyring
    "add_key": [0, 0, 0, 0, 0],
    "bpf": [0, 0, 0],
    "perf_event_open": [0, 0, 0, 0, 0],
    "io_uring_setup": [1, 0],
    "open_by_handle_at": [-1, 0, 0],
    "chroot": [0],
    "personality": [0x40000],  # ADDR_NO_RANDOMIZE: no ASLR
    "clone3": [0, 0],
}
SYSCALLS = """
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
errors, parent = {}, os.getpid()
for name, number, args in json.loads(sys.argv[1]):
    ctypes.set_errno(0)
    ok = libc.syscall(ctypes.c_long(number), *map(ctypes.c_long, args)) >= 0
    if name == "clone" and ok and os.getpid() != parent:
        os._exit(0)  # a child made in a new namespace
    errors[name] = 0 if ok else ctypes.get_errno()
query = libc.personality(ctypes.c_ulong(0xFFFFFFFF))
print(json.dumps([errors, query >= 0]))
"""


def test_seccomp_refuses_what_agents_never_need(sandbox):
    import pyseccomp

    calls = [[name, pyseccomp.resolve_syscall(0, name), args] for name, args in ATTACKS.items()]
    result = sandbox.exec(["python3", "-c", SYSCALLS, json.dumps(calls)])
    errors, query = json.loads(result.stdout)
    assert errors == {name: 1 for name in ATTACKS} | {"clone3": 38}  # EPERM; ENOSYS: use clone
    assert query  # reading the personality is fine
    status = sandbox.exec(["grep", "^Seccomp:", "/proc/self/status"]).stdout
    assert status.split() == ["Seccomp:", "2"]  # a filter is loaded
    strace = sandbox.exec(["strace", "-f", "true"]) if shutil.which("strace") else None
    assert strace is None or "Operation not permitted" in strace.stderr


def test_no_nested_user_namespaces(sandbox, monkeypatch):
    assert sandbox.exec(["unshare", "-U", "true"]).exit_code != 0  # the filter
    allow_all = struct.pack("HBBI", 0x06, 0, 0, 0x7FFF0000)  # BPF_RET SECCOMP_RET_ALLOW
    monkeypatch.setattr(bwrap_sandbox, "seccomp_program", lambda: allow_all)
    with BwrapSandbox(SETTINGS) as unfiltered:  # and --disable-userns on its own
        result = unfiltered.exec(["unshare", "-U", "true"])
        assert result.exit_code != 0 and "No space left on device" in result.stderr  # not EPERM


def test_honest_processes_threads_and_tools_work(sandbox, tmp_path):
    script = """
import multiprocessing, os, subprocess, threading
seen = []
thread = threading.Thread(target=seen.append, args=["thread"])
thread.start(); thread.join()
seen.append(subprocess.run(["echo", "subprocess"], capture_output=True, text=True).stdout.strip())
pid = os.fork()
if pid == 0:
    os._exit(7)
seen.append(f"fork {os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}")
with multiprocessing.Pool(2) as pool:  # semaphores in /dev/shm
    seen.append(f"pool {sum(pool.map(abs, [-1, -2]))}")
print(" | ".join(seen))
"""
    result = sandbox.exec(["python3", "-c", script])
    assert result.stdout == "thread | subprocess | fork 7 | pool 3\n", result.stderr
    commit = "git -c user.name=a -c user.email=a@b commit -q --allow-empty -m first"
    made = sandbox.exec(["sh", "-c", f"git init -q r && cd r && {commit} && git log --format=%s"])
    assert made.stdout == "first\n", made.stderr
    # pytest, taken from this environment (pure Python), on a tiny test file
    site = tmp_path / "in" / "site"
    site.mkdir(parents=True)
    for package in ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "py"):
        source = Path(__import__(package).__file__)
        if source.name == "__init__.py":
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(source.parent, site / package, ignore=ignore)
        else:
            shutil.copy(source, site)
    (tmp_path / "in" / "test_tiny.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    sandbox.copy_in(tmp_path / "in")
    tests = sandbox.exec(["env", "PYTHONPATH=/work/site", "python3", "-m", "pytest", "-q",
                          "-p", "no:cacheprovider", "test_tiny.py"])  # fmt: skip
    assert tests.exit_code == 0 and "1 passed" in tests.stdout, tests.stdout + tests.stderr


# tool: (file, source, command); each prints "c" from a second thread
COMPILERS = {
    "gcc": (
        "t.c",
        "#include <pthread.h>\n#include <stdio.h>\n"
        'void *f(void *a) { puts("c"); return a; }\n'
        "int main(void) { pthread_t t; pthread_create(&t, 0, f, 0); return pthread_join(t, 0); }\n",
        "gcc -pthread t.c -o t && ./t",
    ),
    "g++": (
        "t.cc",
        "#include <iostream>\n#include <thread>\n"
        'int main() { std::thread t([] { std::cout << "c" << std::endl; }); t.join(); }\n',
        "g++ -pthread t.cc -o t && ./t",
    ),
    "node": (
        "t.js",
        'require("child_process").execSync("true");\n'
        'new (require("worker_threads").Worker)("console.log(`c`)", { eval: true });\n',
        "node t.js",
    ),
    "go": (
        "t.go",
        'package main\nimport "fmt"\n'
        "func main() { c := make(chan string); go func() { c <- `c` }(); fmt.Println(<-c) }\n",
        "go run t.go",
    ),
    "cargo": (
        "main.rs",
        'fn main() { std::thread::spawn(|| println!("c")).join().unwrap(); }\n',
        "cargo new -q --vcs none p && mv main.rs p/src && cd p && cargo run -q --offline",
    ),
}


@pytest.mark.parametrize("tool", COMPILERS)
def test_compilers_and_runtimes_work(tool, tmp_path):
    if not os.path.exists(f"/usr/bin/{tool}"):  # the sandbox sees the host's /usr only
        pytest.skip(f"{tool} is not installed under /usr")
    name, source, command = COMPILERS[tool]
    (tmp_path / name).write_text(source)
    with BwrapSandbox(ROOMY) as sandbox:
        sandbox.copy_in(tmp_path)
        result = sandbox.exec(["sh", "-c", command])
    assert (result.exit_code, result.stdout) == (0, "c\n"), result.stderr


def test_environment_stays_off_every_command_line(sandbox):
    secret, marker = f"dgm-unit-{uuid.uuid4().hex}", f"marker-{uuid.uuid4().hex}"
    script = 'tr "\\0" " " < /proc/1/cmdline; echo; echo "token=$TOKEN"; sleep 2'
    results = []
    running = threading.Thread(
        target=lambda: results.append(
            sandbox.exec(["sh", "-c", script, marker], env={"TOKEN": secret})
        )
    )
    running.start()
    seen_running = False
    while running.is_alive():  # what `ps` shows every user of the host
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes().decode(errors="replace")
            except OSError:
                continue  # ended meanwhile
            assert secret not in text
            seen_running |= marker in text and "bwrap" in text
        time.sleep(0.05)
    running.join()
    inside_pid1, token = results[0].stdout.splitlines()
    assert seen_running and "bwrap" in inside_pid1 and secret not in inside_pid1
    assert token == f"token={secret}"  # yet the command has it


def test_copy_out_stays_in_the_work_directory(sandbox, tmp_path):
    sandbox.exec(["ln", "-s", "/etc/shadow", "link"])
    taken = sandbox.copy_out("/work", tmp_path / "out")
    assert not os.path.lexists(tmp_path / "out" / "link")  # refused, never followed
    assert [why.split(":")[0] for why in taken.refused] == ["link"]
    with pytest.raises(SandboxError, match="outside the work directory"):
        sandbox.copy_out("/etc", tmp_path / "etc")
    with pytest.raises(SandboxError, match="leaves the work directory"):
        sandbox.copy_out("/work/../../etc", tmp_path / "etc")


def test_doctor_says_what_holds_an_agent():
    no_docker = {"DOCKER_HOST": "unix:///nonexistent"}
    report = json.loads(run_dgm("sandbox", "doctor", "--json", env=no_docker).stdout)
    protections = report["bwrap_protections"]
    assert protections["root"].startswith("read-only") and "seccomp" in protections
    assert protections["work directory"].startswith("tmpfs" if os.geteuid() == 0 else "each file")
