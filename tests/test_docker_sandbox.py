"""Hostile agent code in real containers: each attack is contained and reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.base import ExecStatus, SandboxError, SandboxSettings
from sandbox.docker_sandbox import LABEL, DockerSandbox, reap
from tests.conftest import write_files

SMALL = SandboxSettings(memory_mb=128, pids=64, disk_mb=16, timeout_s=20, output_bytes=200_000)


@pytest.fixture
def sandbox(docker_client, base_image):
    with DockerSandbox(base_image, SMALL, run_id="test", client=docker_client) as sb:
        yield sb


def py(sb: DockerSandbox, code: str, **kw):
    return sb.exec(["python3", "-c", code], **kw)


def assert_next_sandbox_works(docker_client, base_image) -> None:
    with DockerSandbox(base_image, SMALL, client=docker_client) as fresh:
        result = fresh.exec(["echo", "fine"])
        assert (result.status, result.exit_code, result.stdout) == (ExecStatus.OK, 0, "fine\n")


def test_runs_as_non_root_in_a_read_only_box(sandbox):
    result = sandbox.exec(["sh", "-c", "id -u; pwd; echo oops >&2; exit 3"])
    assert (result.status, result.exit_code) == (ExecStatus.OK, 3)
    assert result.stdout.split() == ["1000", "/work"] and result.stderr == "oops\n"
    outside = sandbox.exec(["sh", "-c", "touch /etc/evil /usr/evil /evil"])
    assert outside.exit_code != 0 and "Read-only file system" in outside.stderr
    caps = sandbox.exec(["grep", "CapEff", "/proc/self/status"])
    assert caps.stdout.split()[1] == "0000000000000000"


def test_copy_in_and_out(sandbox, tmp_path):
    src = write_files(tmp_path / "src", {"agent.py": "print('hi')\n", "pkg/mod.py": "x = 1\n"})
    sandbox.copy_in(src)
    assert sandbox.exec(["python3", "agent.py"]).stdout == "hi\n"
    sandbox.exec(["sh", "-c", "echo new > pkg/new.txt"])
    sandbox.copy_out("/work", tmp_path / "out")
    assert (tmp_path / "out" / "pkg" / "new.txt").read_text() == "new\n"
    assert (tmp_path / "out" / "agent.py").read_text() == "print('hi')\n"


def test_no_network(sandbox):
    result = py(
        sandbox,
        "import socket\n"
        "try:\n socket.create_connection(('1.1.1.1', 80), timeout=3)\n"
        "except OSError as e: print(e.errno)\n",
    )
    assert result.stdout.strip() == "101"  # ENETUNREACH: no route out at all
    assert sandbox.exec(["cat", "/proc/net/dev"]).stdout.count(":") == 1  # only lo


def test_host_secrets_are_not_inside(sandbox, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-host-secret")
    leak = sandbox.exec(["sh", "-c", "cat /proc/1/environ; env; grep -r sk-host / 2>/dev/null"])
    assert "sk-host-secret" not in leak.stdout + leak.stderr
    assert "ANTHROPIC_API_KEY" not in leak.stdout


def test_sleep_forever_times_out(docker_client, base_image, sandbox):
    result = sandbox.exec(["sleep", "600"], timeout_s=1)
    assert result.status is ExecStatus.TIMEOUT and result.duration_s < 10
    with pytest.raises(SandboxError, match="start a new one"):
        sandbox.exec(["true"])
    assert_next_sandbox_works(docker_client, base_image)


def test_memory_bomb_is_oom(docker_client, base_image, sandbox):
    result = py(sandbox, "x = bytearray(10 * 128 * 1024 * 1024)")
    assert result.status is ExecStatus.OOM and result.exit_code == 137
    assert_next_sandbox_works(docker_client, base_image)


def test_fork_bomb_is_contained(docker_client, base_image, sandbox):
    result = sandbox.exec(["sh", "-c", "b() { b | b & }; b; sleep 2; echo survived"], timeout_s=10)
    assert result.status in (ExecStatus.OK, ExecStatus.TIMEOUT)
    assert_next_sandbox_works(docker_client, base_image)


def test_disk_fill_stops_at_the_limit(sandbox):
    result = sandbox.exec(["sh", "-c", "dd if=/dev/zero of=big bs=1M count=100; echo rc=$?"])
    assert "No space left on device" in result.stderr and "rc=1" in result.stdout
    assert sandbox.exec(["sh", "-c", "rm big && echo ok"]).stdout == "ok\n"


def test_flood_of_output_is_truncated(docker_client, base_image, sandbox):
    result = sandbox.exec(["sh", "-c", "yes | head -c 1000000000"])
    assert result.status is ExecStatus.OUTPUT_TRUNCATED
    assert len(result.stdout) <= SMALL.output_bytes and result.duration_s < 10
    assert_next_sandbox_works(docker_client, base_image)


def test_containers_are_labelled_removed_and_reaped(docker_client, base_image):
    sb = DockerSandbox(base_image, SMALL, run_id="crashed-run", unit_id="u1", client=docker_client)
    labels = docker_client.containers.get(sb.id).labels
    assert (
        labels[LABEL] == "1" and labels["dgm.run"] == "crashed-run" and labels["dgm.unit"] == "u1"
    )
    # the run "crashes": nobody closes sb; a new run reaps it
    assert reap(docker_client, "crashed-run") == 1
    assert not docker_client.containers.list(all=True, filters={"label": "dgm.run=crashed-run"})
    with DockerSandbox(base_image, SMALL, client=docker_client) as other:
        cid = other.id
    assert not docker_client.containers.list(all=True, filters={"id": cid})


def test_unknown_image_is_one_clear_error(docker_client):
    with pytest.raises(SandboxError, match="not built"):
        DockerSandbox("dgm-no-such-image:0", SMALL, client=docker_client)


def test_docker_not_running_is_one_clear_error(monkeypatch):
    from sandbox.docker_sandbox import connect

    monkeypatch.setenv("DOCKER_HOST", f"unix://{Path('/nonexistent/docker.sock')}")
    with pytest.raises(SandboxError, match="dockerd --bridge=none"):
        connect()
