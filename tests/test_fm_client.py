"""The engine's FM clients: the real SDKs, through the gateway, against the scripted server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from archive import Archive
from dgm.fm.client import ToolSpec, connect
from dgm.fm.errors import BudgetExceeded, ContextOverflow, FMAuthError, FMUnavailable
from dgm.gateway import Budget, Gateway, GatewaySettings, Upstream
from tests.scripted_fm import Failure, Reply, ScriptedFM, ToolCall

FAST_RETRY = {"retry-after-ms": "10"}
PATH_ONLY = {"type": "object", "properties": {"path": {"type": "string"}}}
EDIT = ToolSpec("edit", "Edit a file", PATH_ONLY)


@pytest.fixture
def fm() -> Iterator[ScriptedFM]:
    with ScriptedFM() as server:
        yield server


@pytest.fixture
def gateway(fm: ScriptedFM, tmp_path: Path) -> Iterator[Gateway]:
    archive = Archive.init(tmp_path / "archive")
    settings = GatewaySettings(
        openai=Upstream(base_url=fm.openai_base_url, api_key="sk-real"),
        anthropic=Upstream(base_url=fm.url, api_key="sk-ant-real"),
    )
    with Gateway(settings, archive) as gw:
        yield gw
    archive.close()


def client(gateway: Gateway, api: str, *, budget: Budget | None = None):
    lease = gateway.open_unit(f"diagnose-{api}", budget=budget)
    base_url = "http://gateway/v1" if api == "openai" else "http://gateway"
    model = "gpt-4o" if api == "openai" else "claude-haiku-4-5"
    return connect(api, model, base_url=base_url, token=lease.token, socket=gateway.socket_path)


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_text_and_tool_calls(gateway, fm, api):
    fm.push(Reply("The agent never ran the tests.", [ToolCall("edit", {"path": "a.py"})]))
    answer = client(gateway, api).complete(
        [{"role": "user", "content": "Why did it fail?"}], system="You diagnose.", tools=[EDIT]
    )
    assert answer.text == "The agent never ran the tests."
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [("edit", {"path": "a.py"})]
    assert (answer.input_tokens, answer.output_tokens) == (100, 20)
    sent = fm.requests[0].body
    if api == "openai":
        assert sent["messages"][0] == {"role": "system", "content": "You diagnose."}
        assert sent["tools"][0]["function"]["name"] == "edit"
    else:
        assert sent["system"] == "You diagnose." and sent["tools"][0]["name"] == "edit"


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_rate_limits_and_server_errors_are_retried(gateway, fm, api):
    fm.push(Failure(429, "slow down", FAST_RETRY), Failure(503, "busy", FAST_RETRY), Reply("ok"))
    assert client(gateway, api).complete([{"role": "user", "content": "hi"}]).text == "ok"
    assert len(fm.requests) == 3


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_typed_errors(gateway, fm, api):
    fm.push(*[Failure(503, "overloaded", FAST_RETRY)] * 5)
    hi = [{"role": "user", "content": "hi"}]
    with pytest.raises(FMUnavailable, match="unavailable after 4 retries: overloaded"):
        client(gateway, api).complete(hi)
    overflow = "prompt is too long: 210000 tokens > 200000 maximum"
    fm.push(Failure(400, overflow))
    with pytest.raises(ContextOverflow, match="prompt is too long"):
        client(gateway, api).complete(hi)
    spent = client(gateway, api, budget=Budget(tokens=0))
    with pytest.raises(BudgetExceeded, match="budget of 0 tokens is spent"):
        spent.complete(hi)
    revoked = client(gateway, api)
    gateway.ledger.close(revoked._sdk.api_key)
    with pytest.raises(FMAuthError, match="unknown or expired unit token"):
        revoked.complete(hi)
