"""What only the bubblewrap backend does: rlimits, host paths, folder escapes."""

from __future__ import annotations

import pytest

from sandbox.base import SandboxError, SandboxSettings
from sandbox.bwrap_sandbox import BwrapSandbox

SETTINGS = SandboxSettings(memory_mb=256, pids=64, disk_mb=16, timeout_s=20)


@pytest.fixture
def sandbox():
    with BwrapSandbox(SETTINGS) as sb:
        yield sb


def test_no_host_home_or_config(sandbox):
    assert sandbox.exec(["ls", "/root", "/home", "/etc/passwd"]).exit_code != 0


def test_memory_bomb_fails_inside(sandbox):
    result = sandbox.exec(["python3", "-c", "x = bytearray(10 * 256 * 1024 * 1024)"])
    assert result.exit_code != 0 and "MemoryError" in result.stderr


def test_file_size_limit(sandbox):
    result = sandbox.exec(["sh", "-c", "dd if=/dev/zero of=big bs=1M count=100; echo rc=$?"])
    assert "rc=0" not in result.stdout


def test_copy_out_stays_in_the_work_directory(sandbox, tmp_path):
    sandbox.exec(["ln", "-s", "/etc/shadow", "link"])
    sandbox.copy_out("/work", tmp_path / "out")
    assert (tmp_path / "out" / "link").is_symlink()  # copied as a link, never followed
    with pytest.raises(SandboxError, match="outside the work directory"):
        sandbox.copy_out("/etc", tmp_path / "etc")
    with pytest.raises(SandboxError, match="leaves the work directory"):
        sandbox.copy_out("/work/../../etc", tmp_path / "etc")
