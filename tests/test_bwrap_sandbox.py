"""The bubblewrap backend against the same hostile code as the Docker one."""

from __future__ import annotations

import os

import pytest

from sandbox import bwrap_sandbox
from sandbox.base import ExecStatus, SandboxError, SandboxSettings
from sandbox.bwrap_sandbox import BwrapSandbox
from tests.conftest import write_files

SMALL = SandboxSettings(memory_mb=256, pids=64, disk_mb=16, timeout_s=20, output_bytes=200_000)

pytestmark = pytest.mark.skipif(
    not bwrap_sandbox.available() and not os.environ.get("DGM_REQUIRE_DOCKER"),
    reason="bubblewrap is not installed",
)


@pytest.fixture
def sandbox():
    with BwrapSandbox(SMALL) as sb:
        yield sb


def assert_next_sandbox_works() -> None:
    with BwrapSandbox(SMALL) as fresh:
        result = fresh.exec(["echo", "fine"])
        assert (result.status, result.exit_code, result.stdout) == (ExecStatus.OK, 0, "fine\n")


def test_non_root_read_only_and_no_host_files(sandbox):
    result = sandbox.exec(["sh", "-c", "id -u; pwd; exit 3"])
    assert (result.status, result.exit_code, result.stdout.split()) == (
        ExecStatus.OK,
        3,
        ["1000", "/work"],
    )
    assert "Read-only file system" in sandbox.exec(["touch", "/usr/evil"]).stderr
    assert sandbox.exec(["ls", "/root", "/home", "/etc/passwd"]).exit_code != 0


def test_copy_in_and_out(sandbox, tmp_path):
    src = write_files(tmp_path / "src", {"agent.py": "print('hi')\n", "pkg/mod.py": "x = 1\n"})
    sandbox.copy_in(src)
    assert sandbox.exec(["python3", "agent.py"]).stdout == "hi\n"
    sandbox.exec(["sh", "-c", "echo new > pkg/new.txt; ln -s /etc/shadow pkg/link"])
    sandbox.copy_out("/work", tmp_path / "out")
    assert (tmp_path / "out" / "pkg" / "new.txt").read_text() == "new\n"
    assert (tmp_path / "out" / "pkg" / "link").is_symlink()  # copied as a link, not followed
    with pytest.raises(SandboxError, match="outside the work directory"):
        sandbox.copy_out("/etc", tmp_path / "etc")
    with pytest.raises(SandboxError, match="leaves the work directory"):
        sandbox.copy_out("/work/../../etc", tmp_path / "etc")


def test_no_network_and_no_secrets(sandbox, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret")
    result = sandbox.exec(
        [
            "python3",
            "-c",
            "import socket\ntry:\n socket.create_connection(('1.1.1.1', 80), timeout=3)\n"
            "except OSError as e: print(e.errno)",
        ]
    )
    assert result.stdout.strip() == "101"
    leak = sandbox.exec(["sh", "-c", "env; cat /proc/1/environ"])
    assert "sk-host-secret" not in leak.stdout and "OPENAI_API_KEY" not in leak.stdout


def test_sleep_forever_times_out(sandbox):
    result = sandbox.exec(["sh", "-c", "sleep 600 & sleep 600"], timeout_s=1)
    assert result.status is ExecStatus.TIMEOUT and result.duration_s < 10
    with pytest.raises(SandboxError, match="start a new one"):
        sandbox.exec(["true"])
    assert_next_sandbox_works()


def test_memory_bomb_fails_inside(sandbox):
    result = sandbox.exec(["python3", "-c", "x = bytearray(10 * 256 * 1024 * 1024)"])
    assert result.exit_code != 0 and "MemoryError" in result.stderr
    assert_next_sandbox_works()


def test_fork_bomb_is_contained(sandbox):
    result = sandbox.exec(["sh", "-c", "b() { b | b & }; b; sleep 2; echo survived"], timeout_s=10)
    assert result.status in (ExecStatus.OK, ExecStatus.TIMEOUT)
    assert_next_sandbox_works()


def test_file_size_limit(sandbox):
    result = sandbox.exec(["sh", "-c", "dd if=/dev/zero of=big bs=1M count=100; echo rc=$?"])
    assert "rc=0" not in result.stdout


def test_flood_of_output_is_truncated(sandbox):
    result = sandbox.exec(["sh", "-c", "yes | head -c 1000000000"])
    assert result.status is ExecStatus.OUTPUT_TRUNCATED
    assert len(result.stdout) <= SMALL.output_bytes and result.duration_s < 10
    assert_next_sandbox_works()
