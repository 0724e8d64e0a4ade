"""`dgm sandbox doctor` and `dgm sandbox exec` as a user runs them."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_dgm
from tests.test_cli import fails_cleanly


def test_doctor(base_image):
    report = json.loads(run_dgm("sandbox", "doctor", "--json").stdout)
    assert report["docker"] and report["image"] == base_image and report["image_built"]
    assert report["limits"]["user"] == "1000:1000" and "gvisor" in report


@pytest.mark.parametrize("backend", ["docker", "bwrap"])
def test_exec_passes_output_and_exit_code(base_image, backend):
    result = run_dgm(
        "sandbox", "exec", "--backend", backend, "--", "sh", "-c", "id -u; echo e >&2; exit 7"
    )
    assert (result.returncode, result.stdout, result.stderr) == (7, "1000\n", "e\n")


def test_exec_reports_limits(base_image):
    out = json.loads(
        run_dgm("sandbox", "exec", "--timeout", "1", "--json", "--", "sleep", "60").stdout
    )
    assert out["status"] == "timeout" and out["exit_code"] is None
    oom = run_dgm(
        "sandbox", "exec", "--memory", "64m", "--", "python3", "-c", "x = bytearray(1 << 30)"
    )
    assert oom.returncode == 1 and oom.stderr.strip().endswith("dgm: sandbox: oom")
    net = json.loads(run_dgm("sandbox", "exec", "--json", "--", "cat", "/proc/net/dev").stdout)
    assert net["status"] == "ok" and "eth0" not in net["stdout"]


def test_bad_input_is_one_line():
    fails_cleanly(run_dgm("sandbox", "exec", "--memory", "lots", "--", "true"), "not a size")
    no_docker = {"DOCKER_HOST": "unix:///nonexistent"}
    down = run_dgm("sandbox", "exec", "--backend", "docker", "--", "true", env=no_docker)
    fails_cleanly(down, "Docker is not reachable", "dockerd --bridge=none")
    fallback = run_dgm("sandbox", "exec", "--json", "--", "sh", "-c", "id -u", env=no_docker)
    assert json.loads(fallback.stdout)["stdout"] == "1000\n"  # auto: bubblewrap took over
    doctor = run_dgm("sandbox", "doctor", env={"DOCKER_HOST": "unix:///nonexistent"})
    assert doctor.returncode == 2 and "not reachable" in doctor.stdout


def test_gvisor_runtime(base_image, gvisor):
    result = json.loads(
        run_dgm("sandbox", "exec", "--runtime", gvisor, "--json", "--", "dmesg").stdout
    )
    assert "Starting gVisor" in result["stdout"]
    unknown = run_dgm("sandbox", "exec", "--runtime", "nosuch", "--", "true")
    fails_cleanly(unknown, "Docker has no runtime nosuch", "scripts/dockerd.json")
    bwrap = run_dgm("sandbox", "exec", "--backend", "bwrap", "--runtime", "runsc", "--", "true")
    fails_cleanly(bwrap, "the runsc runtime needs the docker backend")
