"""What only the Docker backend does: OOM kills, tmpfs disk limit, capabilities, labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.base import ExecStatus, SandboxError
from sandbox.docker_sandbox import LABEL, DockerSandbox, reap
from tests.test_sandboxes import SMALL


@pytest.fixture
def sandbox(docker_client, base_image):
    with DockerSandbox(base_image, SMALL, run_id="test", client=docker_client) as sb:
        yield sb


def test_memory_bomb_is_oom(docker_client, base_image, sandbox):
    result = sandbox.exec(["python3", "-c", "x = bytearray(10 * 128 * 1024 * 1024)"])
    assert result.status is ExecStatus.OOM and result.exit_code == 137
    with DockerSandbox(base_image, SMALL, client=docker_client) as fresh:
        assert fresh.exec(["true"]).exit_code == 0


def test_disk_fill_stops_at_the_limit(sandbox):
    result = sandbox.exec(["sh", "-c", "dd if=/dev/zero of=big bs=1M count=100; echo rc=$?"])
    assert "No space left on device" in result.stderr and "rc=1" in result.stdout
    assert sandbox.exec(["sh", "-c", "rm big && echo ok"]).stdout == "ok\n"


def test_no_capabilities_and_no_root_writes(sandbox):
    caps = sandbox.exec(["grep", "CapEff", "/proc/self/status"])
    assert caps.stdout.split()[1] == "0000000000000000"
    assert "Read-only file system" in sandbox.exec(["touch", "/etc/evil"]).stderr


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
