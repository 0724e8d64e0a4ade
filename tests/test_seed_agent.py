"""The seed agent where it runs: inside a network-less sandbox, reaching the FM via the gateway."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from archive import Archive
from dgm.gateway import Gateway, GatewaySettings, Upstream
from sandbox.base import ExecStatus, SandboxSettings
from sandbox.docker_sandbox import DockerSandbox
from tests.conftest import write_files
from tests.scripted_fm import Reply, ScriptedFM, ToolCall

SEED_AGENT = Path(__file__).resolve().parents[1] / "dgm" / "seed_agent"
REAL_KEY = "sk-real-key-of-the-run"


def git_repo(root: Path, files: dict[str, str]) -> Path:
    write_files(root, files)
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "start"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(root), *command],
            check=True,
        )
    return root


@pytest.fixture
def sandbox(docker_client, base_image):
    with DockerSandbox(base_image, SandboxSettings(timeout_s=120), client=docker_client) as box:
        yield box


def test_its_own_suite_passes_inside_the_sandbox(sandbox):
    sandbox.copy_in(SEED_AGENT, "/work/agent")
    result = sandbox.exec(["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "agent"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "10 passed" in result.stdout


def test_fixes_a_bug_in_a_sandbox_through_the_gateway(docker_client, base_image, tmp_path):
    repo = git_repo(
        tmp_path / "repo",
        {
            "calc.py": "def add(a, b):\n    return a - b\n",
            "test_calc.py": "from calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n",
        },
    )
    fix = {"command": "str_replace", "path": "calc.py", "old_str": "a - b", "new_str": "a + b"}
    script = [
        Reply("", [ToolCall("bash", {"command": "python3 -m pytest -q -p no:cacheprovider"})]),
        Reply("", [ToolCall("editor", fix)]),
        Reply("", [ToolCall("bash", {"command": "python3 -m pytest -q -p no:cacheprovider"})]),
        Reply("add() now adds; the test passes."),
    ]
    archive = Archive.init(tmp_path / "archive")
    with (
        ScriptedFM(*script) as fm,
        Gateway(
            GatewaySettings(openai=Upstream(base_url=fm.openai_base_url, api_key=REAL_KEY)),
            archive,
        ) as gateway,
    ):
        lease = gateway.open_unit("eval-seed")
        settings = SandboxSettings(gateway_socket=gateway.socket_path, timeout_s=120)
        with DockerSandbox(base_image, settings, client=docker_client) as box:
            box.copy_in(SEED_AGENT, "/work/agent")
            box.copy_in(repo, "/work/repo")
            box.exec(["sh", "-c", "cat > /work/task.md"], stdin=b"add(2, 3) returns -1.\n")
            command = [
                "python3", "/work/agent/coding_agent.py", "--task-file", "/work/task.md",
                "--repo", "/work/repo", "--out", "/work/out", "--model", "gpt-4o",
            ]  # fmt: skip
            result = box.exec(command, env=lease.env(settings.gateway_port))
            assert (result.status, result.exit_code) == (ExecStatus.OK, 0), result.stderr
            assert "stopped: done" in result.stderr
            box.copy_out("/work/out", tmp_path / "out")
    patch = (tmp_path / "out" / "patch.diff").read_text()
    assert "-    return a - b\n+    return a + b" in patch
    trajectory = [json.loads(x) for x in (tmp_path / "out" / "trajectory.jsonl").open()]
    assert [t["type"] for t in trajectory] == ["model", "tool"] * 3 + ["model", "stop"]
    assert "1 failed" in trajectory[1]["result"] and "1 passed" in trajectory[5]["result"]
    # the provider saw the run's key; the agent only ever held its unit token
    assert {r.headers["authorization"] for r in fm.requests} == {f"Bearer {REAL_KEY}"}
    assert len(archive.fm_calls(unit_id="eval-seed")) == 4
    archive.close()
