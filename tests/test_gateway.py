"""The FM gateway, driven by the real OpenAI and Anthropic SDKs over its Unix socket."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2 as httpx
import openai
import pytest

from archive import Archive
from dgm.fm.prices import Price
from dgm.gateway import Budget, Gateway, GatewaySettings, Lease, Spend, Upstream
from tests.scripted_fm import Failure, Reply, ScriptedFM, ToolCall

OPENAI_KEY = "sk-real-openai-key"
ANTHROPIC_KEY = "sk-ant-real-key"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Archive]:
    archive = Archive.init(tmp_path / "archive")
    yield archive
    archive.close()


@pytest.fixture
def fm() -> Iterator[ScriptedFM]:
    with ScriptedFM() as server:
        yield server


def settings_for(fm: ScriptedFM, **extra) -> GatewaySettings:
    return GatewaySettings(
        openai=Upstream(base_url=fm.openai_base_url, api_key=OPENAI_KEY),
        anthropic=Upstream(base_url=fm.url, api_key=ANTHROPIC_KEY),
        **extra,
    )


@pytest.fixture
def gateway(fm: ScriptedFM, store: Archive) -> Iterator[Gateway]:
    with Gateway(settings_for(fm), store) as gw:
        yield gw


def openai_client(gw: Gateway, lease: Lease) -> openai.OpenAI:
    transport = httpx.HTTPTransport(uds=gw.socket_path)
    return openai.OpenAI(
        base_url="http://gateway/v1",
        api_key=lease.token,
        max_retries=0,
        http_client=httpx.Client(transport=transport),
    )


def anthropic_client(gw: Gateway, lease: Lease) -> anthropic.Anthropic:
    transport = httpx.HTTPTransport(uds=gw.socket_path)
    return anthropic.Anthropic(
        base_url="http://gateway",
        api_key=lease.token,
        max_retries=0,
        http_client=httpx.Client(transport=transport),
    )


def calls(gw: Gateway, store: Archive, **where):
    gw.ledger.flush()  # the writer thread stops: no more calls in this test
    return store.fm_calls(**where)


HELLO = [{"role": "user", "content": "hello"}]
EDIT = ToolCall("str_replace", {"path": "a.py", "old": "x = 1", "new": "x = 2"})


def test_openai_call_is_forwarded_with_the_real_key_and_metered(gateway, fm, store):
    fm.push(Reply("I will edit a.py", [EDIT], input_tokens=1200, output_tokens=300))
    lease = gateway.open_unit("expand-1")
    answer = openai_client(gateway, lease).chat.completions.create(model="gpt-4o", messages=HELLO)
    message = answer.choices[0].message
    assert message.content == "I will edit a.py"
    assert message.tool_calls[0].function.name == "str_replace"
    assert fm.requests[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert fm.requests[0].body["messages"] == HELLO
    [call] = calls(gateway, store)
    assert (call.unit_id, call.provider, call.model, call.status) == (
        "expand-1",
        "openai",
        "gpt-4o",
        "ok",
    )
    assert (call.input_tokens, call.output_tokens) == (1200, 300)
    assert call.cost_usd == pytest.approx((1200 * 2.5 + 300 * 10.0) / 1e6)
    assert call.latency_s > 0


def test_openai_stream_is_relayed_and_metered_without_an_extra_chunk(gateway, fm, store):
    fm.push(Reply("a streamed answer that is long", [EDIT], input_tokens=50, output_tokens=7))
    lease = gateway.open_unit("eval-1")
    client = openai_client(gateway, lease)
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
    # the gateway asked for usage; the agent did not, so it never sees a chunk without choices
    assert fm.requests[0].body["stream_options"] == {"include_usage": True}
    assert all(chunk.choices for chunk in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "a streamed answer that is long"
    arguments = "".join(
        tc.function.arguments or "" for c in chunks for tc in c.choices[0].delta.tool_calls or []
    )
    assert arguments == '{"path": "a.py", "old": "x = 1", "new": "x = 2"}'

    fm.push(Reply("again", input_tokens=5, output_tokens=2))
    stream = client.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    assert [c.usage.total_tokens for c in stream if c.usage] == [7]
    tokens = [(c.input_tokens, c.output_tokens, c.status) for c in calls(gateway, store)]
    assert tokens == [(50, 7, "ok"), (5, 2, "ok")]


def test_anthropic_messages_and_stream(gateway, fm, store):
    fm.push(
        Reply("Looking.", [EDIT], input_tokens=900, output_tokens=100),
        Reply("Done: the bug was an off-by-one.", [EDIT], input_tokens=1000, output_tokens=40),
    )
    lease = gateway.open_unit("expand-2", node_id=None)
    client = anthropic_client(gateway, lease)
    model = "claude-haiku-4-5-20251001"
    message = client.messages.create(model=model, max_tokens=100, messages=HELLO)
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[1].input == EDIT.arguments
    with client.messages.stream(model=model, max_tokens=100, messages=HELLO) as stream:
        assert stream.get_final_text() == "Done: the bug was an off-by-one."
        final = stream.get_final_message()
    assert final.content[1].input == EDIT.arguments
    assert final.usage.output_tokens == 40
    assert fm.requests[0].headers["x-api-key"] == ANTHROPIC_KEY
    assert "authorization" not in fm.requests[0].headers
    assert fm.requests[0].headers["anthropic-version"]
    metered = calls(gateway, store, unit_id="expand-2")
    assert [(c.input_tokens, c.output_tokens, c.model) for c in metered] == [
        (900, 100, model),
        (1000, 40, model),
    ]
    assert metered[1].cost_usd == pytest.approx((1000 * 1.0 + 40 * 5.0) / 1e6)


def test_unknown_or_revoked_token_is_refused_and_nothing_is_forwarded(gateway, fm, store):
    fake = Lease("nobody", "sk-guessed")
    with pytest.raises(openai.AuthenticationError, match="unknown or expired unit token"):
        openai_client(gateway, fake).chat.completions.create(model="gpt-4o", messages=HELLO)
    lease = gateway.open_unit("eval-2")
    gateway.close_unit(lease)
    with pytest.raises(anthropic.AuthenticationError, match="unknown or expired unit token"):
        anthropic_client(gateway, lease).messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=HELLO
        )
    assert fm.requests == []
    assert [(c.unit_id, c.status) for c in calls(gateway, store)] == [
        (None, "unauthorized"),
        (None, "unauthorized"),
    ]


def test_unit_budget_in_tokens_stops_the_unit_with_a_clear_error(gateway, fm, store):
    fm.push(*[Reply("ok", input_tokens=100, output_tokens=20)] * 3)
    lease = gateway.open_unit("expand-3", budget=Budget(tokens=1300))
    client = openai_client(gateway, lease)
    # each call reserves its worst case: 20 output tokens, plus its body's bytes and
    # PROMPT_TOKENS of input (about 1,130), so the third no longer fits beside 240 spent
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=20)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=20)
    assert refused.value.status_code == 402
    assert re.search(
        r"this unit's budget of 1,300 tokens cannot cover this call, which may use up to "
        r"1,1\d\d tokens: 240 tokens used, 0 tokens held by calls in flight",
        str(refused.value),
    )
    other = openai_client(gateway, gateway.open_unit("expand-4"))
    assert other.chat.completions.create(model="gpt-4o", messages=HELLO).choices
    assert gateway.close_unit(lease) == Spend(tokens=240, usd=pytest.approx(0.0009))
    statuses = [c.status for c in calls(gateway, store)]
    assert statuses == ["ok", "ok", "budget-exceeded", "ok"]
    assert len(fm.requests) == 3


def test_run_budget_in_usd_holds_across_units_and_restarts(fm, store):
    run = store.create_run("budgeted", {})
    settings = settings_for(fm, budget=Budget(usd=0.02))
    fm.push(Reply("big", input_tokens=1000, output_tokens=1000))  # $0.0125 on gpt-4o
    # each call reserves its worst case: up to max_tokens of output at the model's price
    refused = r"the run's budget of \$0.0200 cannot cover this call, .*: \$0.0125 used"
    with Gateway(settings, store, run_id=run.id) as gw:
        openai_client(gw, gw.open_unit("u1")).chat.completions.create(
            model="gpt-4o", messages=HELLO, max_tokens=1000
        )
        with pytest.raises(anthropic.APIStatusError, match=refused):  # up to $0.0111
            anthropic_client(gw, gw.open_unit("u2")).messages.create(
                model="claude-haiku-4-5", max_tokens=2000, messages=HELLO
            )
    tokens, usd = store.fm_spend(run.id)
    assert (tokens, usd) == (2000, pytest.approx(0.0125))
    # a resumed run starts from what the archive says it spent
    resumed = Gateway(settings, store, run_id=run.id, spent=Spend(tokens, usd))
    with resumed as gw, pytest.raises(openai.APIStatusError, match=refused):
        openai_client(gw, gw.open_unit("u3")).chat.completions.create(
            model="gpt-4o", messages=HELLO, max_tokens=1000
        )
    assert len(fm.requests) == 1
    assert [c.status for c in store.fm_calls(run_id=run.id)] == ["ok", *["budget-exceeded"] * 2]


def test_usd_budget_refuses_a_model_without_a_price(fm, store):
    fm.push(Reply("priced by the config"))
    settings = settings_for(fm, unit_budget=Budget(usd=1.0))
    with Gateway(settings, store) as gw:
        client = openai_client(gw, gw.open_unit("u1"))
        with pytest.raises(openai.BadRequestError, match="no price is known for model gpt-9-x"):
            client.chat.completions.create(model="gpt-9-x", messages=HELLO)
    settings.prices["gpt-9"] = Price(1.0, 2.0)
    with Gateway(settings, store) as gw:
        client = openai_client(gw, gw.open_unit("u2"))
        client.chat.completions.create(model="gpt-9-x", messages=HELLO)
    assert [(c.status, c.cost_usd) for c in store.fm_calls()] == [
        ("unpriced", 0.0),
        ("ok", pytest.approx((100 * 1.0 + 20 * 2.0) / 1e6)),
    ]


def test_provider_errors_pass_through_and_are_recorded(gateway, fm, store):
    fm.push(Failure(429, "slow down", {"retry-after": "7"}), Failure(500, "upstream broke"))
    client = openai_client(gateway, gateway.open_unit("eval-3"))
    with pytest.raises(openai.RateLimitError, match="slow down") as limited:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert limited.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.InternalServerError, match="upstream broke"):
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert [c.status for c in calls(gateway, store)] == ["error-429", "error-500"]


def test_unreachable_or_missing_provider(fm, store):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    dead = GatewaySettings(openai=Upstream(base_url=f"http://127.0.0.1:{port}/v1", api_key="k"))
    with Gateway(dead, store) as gw:
        lease = gw.open_unit("eval-4")
        with pytest.raises(openai.APIStatusError, match="could not be reached") as failed:
            openai_client(gw, lease).chat.completions.create(model="gpt-4o", messages=HELLO)
        assert failed.value.status_code == 502
        with pytest.raises(anthropic.NotFoundError, match="no anthropic provider"):
            anthropic_client(gw, lease).messages.create(
                model="claude-haiku-4-5", max_tokens=10, messages=HELLO
            )
    assert [c.status for c in store.fm_calls()] == ["unreachable", "no-provider"]


def test_malformed_request_is_refused(gateway):
    lease = gateway.open_unit("eval-5")
    transport = httpx.HTTPTransport(uds=gateway.socket_path)
    with httpx.Client(transport=transport, base_url="http://gateway") as client:
        auth = {"authorization": f"Bearer {lease.token}"}
        bad = client.post("/v1/chat/completions", content=b"{not json", headers=auth)
        assert bad.status_code == 400
        assert bad.json()["error"]["message"] == "the body must be JSON with a model"
        assert client.post("/v1/embeddings", json={"model": "x"}, headers=auth).status_code == 404


def test_agent_that_hangs_up_mid_stream_is_charged_for_what_it_used(gateway, fm, store):
    fm.push(Reply("x" * 400, input_tokens=80, output_tokens=90, chunk_delay_s=0.02))
    client = anthropic_client(gateway, gateway.open_unit("eval-6"))
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=99, messages=HELLO) as s:
        next(iter(s.text_stream))
    deadline = time.monotonic() + 10
    while not gateway.ledger.spent.tokens and time.monotonic() < deadline:
        time.sleep(0.02)
    [call] = calls(gateway, store)
    # Anthropic reports input tokens first; output counts only arrive at the end
    assert (call.status, call.input_tokens) == ("disconnected", 80)
    fm.push(Reply("still here"))
    answer = client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HELLO)
    assert answer.content[0].text == "still here"
