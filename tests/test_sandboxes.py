"""Hostile agent code against every sandbox backend: each attack is contained and reported."""

from __future__ import annotations

import threading

import pytest

from sandbox.base import ExecStatus, SandboxError, SandboxSettings
from tests.conftest import write_files

SMALL = SandboxSettings(memory_mb=128, pids=64, disk_mb=16, timeout_s=20, output_bytes=200_000)


@pytest.fixture
def sandbox(new_sandbox):
    return new_sandbox(SMALL)


def assert_next_sandbox_works(new_sandbox) -> None:
    result = new_sandbox(SMALL).exec(["echo", "fine"])
    assert (result.status, result.exit_code, result.stdout) == (ExecStatus.OK, 0, "fine\n")


def test_runs_as_non_root_on_a_read_only_system(sandbox):
    result = sandbox.exec(["sh", "-c", "id -u; pwd; echo oops >&2; exit 3"])
    assert (result.status, result.exit_code) == (ExecStatus.OK, 3)
    assert result.stdout.split() == ["1000", "/work"] and result.stderr == "oops\n"
    outside = sandbox.exec(["sh", "-c", "touch /usr/evil"])
    # gVisor checks permissions before the read-only mount
    assert outside.exit_code != 0 and (
        "Read-only file system" in outside.stderr or "Permission denied" in outside.stderr
    )
    assert "ro" in mount_options(sandbox, "/usr")


def mount_options(sandbox, path: str) -> list[str]:
    """The options of the mount that holds `path` (the last, longest one listed)."""
    mounts = [line.split() for line in sandbox.exec(["cat", "/proc/mounts"]).stdout.splitlines()]
    holding = [m for m in mounts if path == m[1] or path.startswith(m[1].rstrip("/") + "/")]
    return max(holding, key=lambda m: len(m[1]))[3].split(",")


def test_copy_in_and_out(sandbox, tmp_path):
    src = write_files(tmp_path / "src", {"agent.py": "print('hi')\n", "pkg/mod.py": "x = 1\n"})
    sandbox.copy_in(src)
    assert sandbox.exec(["python3", "agent.py"]).stdout == "hi\n"
    sandbox.exec(["sh", "-c", "echo new > pkg/new.txt"])
    sandbox.copy_out("/work", tmp_path / "out")
    assert (tmp_path / "out" / "pkg" / "new.txt").read_text() == "new\n"
    sandbox.copy_in(src / "pkg", "/work/a/new/folder")
    assert sandbox.exec(["cat", "a/new/folder/mod.py"]).stdout == "x = 1\n"
    assert (tmp_path / "out" / "agent.py").read_text() == "print('hi')\n"


def test_no_network(sandbox):
    result = sandbox.exec(
        [
            "python3",
            "-c",
            "import socket\ntry:\n socket.create_connection(('1.1.1.1', 80), timeout=3)\n"
            "except OSError as e: print(e.errno)",
        ]
    )
    # ENETUNREACH (gVisor: EHOSTUNREACH): no route out at all, nothing is sent
    assert result.stdout.strip() in ("101", "113")
    assert sandbox.exec(["cat", "/proc/net/dev"]).stdout.count(":") == 1  # only lo


def test_host_secrets_are_not_inside(sandbox, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-host-secret")
    leak = sandbox.exec(["sh", "-c", "cat /proc/1/environ; env; grep -r sk-host / 2>/dev/null"])
    assert "sk-host-secret" not in leak.stdout + leak.stderr
    assert "ANTHROPIC_API_KEY" not in leak.stdout


def test_sleep_forever_times_out(new_sandbox, sandbox):
    result = sandbox.exec(["sh", "-c", "sleep 600 & sleep 600"], timeout_s=1)
    assert result.status is ExecStatus.TIMEOUT and result.duration_s < 10
    with pytest.raises(SandboxError, match="start a new one"):
        sandbox.exec(["true"])
    assert_next_sandbox_works(new_sandbox)


def test_closing_it_from_another_thread_ends_the_command_running_in_it(sandbox):
    # how a run abandons its units: their sandboxes are closed under them
    closer = threading.Timer(1.0, sandbox.close)
    closer.start()
    result = sandbox.exec(["sh", "-c", "sleep 600 & sleep 600"], timeout_s=120)
    closer.join()
    assert result.status is ExecStatus.ERROR and result.duration_s < 30
    with pytest.raises(SandboxError, match="start a new one"):
        sandbox.exec(["true"])


def test_fork_bomb_is_contained(new_sandbox, sandbox):
    result = sandbox.exec(["sh", "-c", "b() { b | b & }; b; sleep 2; echo survived"], timeout_s=10)
    assert result.status in (ExecStatus.OK, ExecStatus.TIMEOUT)
    assert_next_sandbox_works(new_sandbox)


def test_flood_of_output_is_truncated(new_sandbox, sandbox):
    result = sandbox.exec(["sh", "-c", "yes | head -c 1000000000"])
    assert result.status is ExecStatus.OUTPUT_TRUNCATED
    assert len(result.stdout) <= SMALL.output_bytes and result.duration_s < 10
    assert_next_sandbox_works(new_sandbox)
