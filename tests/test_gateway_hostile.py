"""The FM gateway against an agent that tries to get more than it is given: past its budget,
to models, tools and URLs the run did not choose, with bodies too large to read, or at the
gateway's secrets. Each attack sits beside an honest call that still goes through."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import anthropic
import httpx2 as httpx
import openai
import pytest

from dgm.gateway import Budget, Gateway, GatewaySettings, Spend, Upstream
from dgm.gateway.server import IMAGE_TOKENS, MAX_REQUEST_BYTES, PROMPT_TOKENS
from tests import test_gateway
from tests.scripted_fm import ANTHROPIC, Failure, Reply
from tests.test_gateway import (
    ANTHROPIC_KEY,
    HELLO,
    OPENAI_KEY,
    anthropic_client,
    calls,
    openai_client,
    settings_for,
)

fm, store, gateway = test_gateway.fm, test_gateway.store, test_gateway.gateway  # fixtures

HAIKU = "claude-haiku-4-5"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="


def raw_client(gw: Gateway) -> httpx.Client:
    """For bodies and headers an SDK will not send."""
    transport = httpx.HTTPTransport(uds=gw.socket_path)
    return httpx.Client(transport=transport, base_url="http://gateway")


def wait_for_spend(gw: Gateway) -> None:
    deadline = time.monotonic() + 10
    while not gw.ledger.spent.tokens and time.monotonic() < deadline:
        time.sleep(0.02)


def assert_nothing_held(gw: Gateway) -> None:
    assert gw.ledger.held.tokens == 0
    assert gw.ledger.held.usd == pytest.approx(0.0, abs=1e-12)


# -- budgets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run_budget", "unit_budget", "refusals"),
    [
        (Budget(), Budget(tokens=5_000), True),  # two reservations fit at once, then none
        (Budget(usd=0.05), Budget(), True),  # three reservations ($0.0128 each) fit, then none
        (Budget(), Budget(tokens=45_000), False),  # honest control: room for all twenty
    ],
)
def test_concurrent_calls_never_spend_past_the_budget(fm, store, run_budget, unit_budget, refusals):
    def slowly(request):  # every call is still in flight when the others arrive
        time.sleep(0.3)
        return Reply("ok", input_tokens=1000, output_tokens=1000)  # 2,000 tokens, $0.0125

    fm.responder = slowly
    with Gateway(settings_for(fm, budget=run_budget), store) as gw:
        client = openai_client(gw, gw.open_unit("greedy", budget=unit_budget))

        def one(_: int) -> int:
            try:
                client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=1000)
            except openai.APIStatusError as error:
                assert "cannot cover this call" in error.message
                return error.status_code
            return 200

        with ThreadPoolExecutor(20) as pool:
            codes = list(pool.map(one, range(20)))
        spent = gw.ledger.spent
        assert_nothing_held(gw)
    rows = store.fm_calls()
    assert (402 in codes, 200 in codes) == (refusals, True)
    assert set(codes) <= {200, 402}
    assert spent.tokens == codes.count(200) * 2000
    assert spent.tokens <= (unit_budget.tokens or spent.tokens)
    assert spent.usd <= (run_budget.usd or spent.usd)
    # the archive says what the ledger says (a resumed run starts from it)
    assert sum(r.input_tokens + r.output_tokens for r in rows) == spent.tokens
    assert sum(r.cost_usd for r in rows) == pytest.approx(spent.usd)
    assert [r.status for r in rows].count("budget-exceeded") == codes.count(402)


def test_the_run_is_short_of_budget_only_when_its_spend_leaves_too_little(fm, store):
    def slowly(request):
        time.sleep(0.3)
        return Reply("ok", input_tokens=500, output_tokens=500)

    fm.responder = slowly
    with Gateway(settings_for(fm, budget=Budget(tokens=5000)), store) as gw:
        client = openai_client(gw, gw.open_unit("u"))

        def one(_: int) -> int:
            try:
                client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=1000)
            except openai.APIStatusError as error:
                return error.status_code
            return 200

        with ThreadPoolExecutor(3) as pool:  # about 2,100 tokens reserved each: two fit
            assert sorted(pool.map(one, range(3))) == [200, 200, 402]
        assert gw.ledger.short_of() is None  # refused for what the others held, not spent
        assert one(0) == 200  # 3,000 spent now
        assert (one(0), gw.ledger.short_of()) == (402, "tokens")


def test_one_call_larger_than_any_context_does_not_end_the_run(fm, store):
    fm.push(Reply("ok"))
    with Gateway(settings_for(fm, budget=Budget(tokens=10_000_000)), store) as gw:
        client = openai_client(gw, gw.open_unit("u"))
        huge = [{"role": "user", "content": "x" * 20_000_000}]  # 20 MB: 20 M tokens reserved
        with pytest.raises(openai.APIStatusError, match="cannot cover this call"):
            client.chat.completions.create(model="gpt-4o", messages=huge)
        assert gw.ledger.short_of() is None  # an agent cannot stop the run this way
        client.chat.completions.create(model="gpt-4o", messages=HELLO)  # honest calls go on


def test_output_limits_are_capped_filled_in_and_reserved(fm, store):
    fm.push(*[Reply("ok")] * 5)
    with Gateway(settings_for(fm, max_output_tokens=1000), store) as gw:
        client = openai_client(gw, gw.open_unit("u1", budget=Budget(tokens=3000)))
        client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=100_000)
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
        client.chat.completions.create(model="gpt-4o", messages=HELLO, max_completion_tokens=300)
        # n answers may each be as long: 3 x 1,000 output tokens and the input do not fit
        with pytest.raises(openai.APIStatusError, match=r"may use up to 4,\d{3} tokens"):
            client.chat.completions.create(model="gpt-4o", messages=HELLO, n=3)
        client.chat.completions.create(model="gpt-4o", messages=HELLO, n=1)
        anthropic_client(gw, gw.open_unit("u2")).messages.create(
            model=HAIKU, max_tokens=20_000, messages=HELLO
        )
    limits = [
        {k: r.body[k] for k in ("max_tokens", "max_completion_tokens") if k in r.body}
        for r in fm.requests
    ]
    assert limits == [
        {"max_tokens": 1000},
        {"max_completion_tokens": 1000},  # the run's cap when the call sets none
        {"max_completion_tokens": 300},  # an honest limit goes as it was
        {"max_completion_tokens": 1000},
        {"max_tokens": 1000},
    ]


def test_openai_stream_the_agent_hangs_up_on_is_charged_an_estimate(gateway, fm, store):
    fm.push(Reply("x" * 400, input_tokens=80, output_tokens=90, chunk_delay_s=0.02))
    client = openai_client(gateway, gateway.open_unit("eval-7"))
    stream = client.chat.completions.create(
        model="gpt-4o", messages=HELLO, max_tokens=500, stream=True
    )
    first = next(iter(stream))
    stream.close()
    wait_for_spend(gateway)
    spent = gateway.ledger.spent
    assert_nothing_held(gateway)
    [call] = calls(gateway, store)
    # usage comes only at the end of an OpenAI stream: input is the reservation's estimate
    # (the body's bytes and PROMPT_TOKENS), output the bytes relayed (at least the first chunk)
    assert call.status == "disconnected"
    assert PROMPT_TOKENS + len(json.dumps(HELLO)) < call.input_tokens < PROMPT_TOKENS + 300
    assert call.output_tokens >= len(f"data: {first.model_dump_json(exclude_none=True)}")
    assert spent == Spend(call.input_tokens + call.output_tokens, pytest.approx(call.cost_usd))


@contextlib.contextmanager
def breaking_provider(events: list[bytes]) -> Iterator[str]:
    """An upstream that starts a stream, sends `events`, and hangs up; yields its URL."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(65536)
            head, _, body = request.partition(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head.lower())[1])
            while len(body) < length:
                body += connection.recv(65536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            for event in events:
                connection.sendall(b"%x\r\n%s\r\n" % (len(event), event))

    threading.Thread(target=serve, daemon=True).start()
    with listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_stream_the_provider_breaks_off_is_charged_what_it_relayed(store):
    events = ANTHROPIC.events(Reply("y" * 300, input_tokens=70, output_tokens=60), HAIKU, False)
    events = events[:-2]  # no message_delta (the output count) and no message_stop
    with breaking_provider(events) as url:
        settings = GatewaySettings(anthropic=Upstream(base_url=url, api_key=ANTHROPIC_KEY))
        with Gateway(settings, store) as gw:
            client = anthropic_client(gw, gw.open_unit("eval-8"))
            with client.messages.stream(model=HAIKU, max_tokens=500, messages=HELLO) as stream:
                text = "".join(stream.text_stream)
            wait_for_spend(gw)
            assert_nothing_held(gw)
    assert text == "y" * 300
    [call] = store.fm_calls()
    assert (call.status, call.input_tokens) == ("broken-stream", 70)  # as message_start said
    assert call.output_tokens == sum(len(event) for event in events)


def test_images_reserve_their_pixel_cost_not_their_bytes(gateway, fm, store):
    fm.push(Reply("a tiny image"))
    look = {"type": "text", "text": "what is this?"}
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    budget = Budget(tokens=PROMPT_TOKENS + 500 + IMAGE_TOKENS)  # room for one image, not two
    client = openai_client(gateway, gateway.open_unit("u", budget=budget))
    one = [{"role": "user", "content": [look, image]}]
    client.chat.completions.create(model="gpt-4o", messages=one, max_tokens=10)
    two = [{"role": "user", "content": [look, image, image]}]  # ~100 more bytes: refused
    with pytest.raises(openai.APIStatusError, match="cannot cover this call"):
        client.chat.completions.create(model="gpt-4o", messages=two, max_tokens=10)
    assert len(fm.requests) == 1


# -- what is forwarded ----------------------------------------------------------------------


def test_only_the_runs_models_are_forwarded(fm, store):
    fm.push(Reply("from gpt-4o"), Reply("from haiku"))
    with Gateway(settings_for(fm, models=["gpt-4o", HAIKU]), store) as gw:
        lease = gw.open_unit("u")
        gpt, claude = openai_client(gw, lease), anthropic_client(gw, lease)
        refused = "model 'o1' is not one of this run's: gpt-4o, claude-haiku-4-5"
        with pytest.raises(openai.BadRequestError, match=re.escape(refused)):
            gpt.chat.completions.create(model="o1", messages=HELLO)
        with pytest.raises(anthropic.BadRequestError, match="model 'claude-opus-4-1' is not"):
            claude.messages.create(model="claude-opus-4-1", max_tokens=10, messages=HELLO)
        assert gpt.chat.completions.create(model="gpt-4o", messages=HELLO).choices
        assert claude.messages.create(model=HAIKU, max_tokens=10, messages=HELLO).content
        statuses = [c.status for c in calls(gw, store)]
    assert [r.body["model"] for r in fm.requests] == ["gpt-4o", HAIKU]
    assert statuses == ["refused", "refused", "ok", "ok"]


def call(gw: Gateway, api: str, **extra):
    """One call through an SDK with `extra` in its body (or its headers, under `headers`)."""
    headers = extra.pop("headers", None)
    lease = gw.open_unit("agent")
    if api == "openai":
        return openai_client(gw, lease).chat.completions.create(
            model="gpt-4o", messages=extra.pop("messages", HELLO), extra_body=extra,
            extra_headers=headers, max_tokens=100,
        )  # fmt: skip
    return anthropic_client(gw, lease).messages.create(
        model=HAIKU, messages=extra.pop("messages", HELLO), extra_body=extra,
        extra_headers=headers, max_tokens=2000,
    )  # fmt: skip


def refused(gw: Gateway, api: str, message: str, **extra) -> None:
    sdk = openai if api == "openai" else anthropic
    with pytest.raises(sdk.BadRequestError, match=re.escape(message)):
        call(gw, api, **extra)


HONEST = {
    "openai": {
        "temperature": 0.2, "top_p": 0.9, "seed": 7, "stop": ["END"], "n": 1,
        "frequency_penalty": 0.1, "presence_penalty": 0.1, "logit_bias": {"50256": -100},
        "logprobs": True, "top_logprobs": 2, "user": "agent-1", "reasoning_effort": "low",
        "parallel_tool_calls": False, "tool_choice": "auto",
        "tools": [{"type": "function", "function": {"name": "edit", "parameters": {}}}],
        "response_format": {
            "type": "json_schema", "json_schema": {"name": "answer", "schema": {}},
        },
    },
    "anthropic": {
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "temperature": 1.0, "stop_sequences": ["END"],
        "metadata": {"user_id": "agent-1"}, "tool_choice": {"type": "auto"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [
            {"name": "edit", "input_schema": {"type": "object"}},
            {"type": "custom", "name": "view", "input_schema": {"type": "object"}},
        ],
    },
}  # fmt: skip


@pytest.mark.parametrize(
    ("api", "field", "value"),
    [
        ("openai", "web_search_options", {"search_context_size": "high"}),
        ("openai", "store", True),
        ("openai", "service_tier", "priority"),
        ("openai", "audio", {"voice": "alloy", "format": "wav"}),
        ("openai", "modalities", ["text", "audio"]),
        ("openai", "prediction", {"type": "content", "content": "x"}),
        ("openai", "metadata", {"k": "v"}),
        ("anthropic", "mcp_servers", [{"type": "url", "url": "https://mcp.example", "name": "m"}]),
        ("anthropic", "container", "container_0123"),
        ("anthropic", "service_tier", "auto"),
    ],
)
def test_fields_outside_the_allowlist_are_refused(gateway, fm, api, field, value):
    refused(gateway, api, f"the field {field!r} is not forwarded", **{field: value})
    fm.push(Reply("honest"))
    call(gateway, api, **HONEST[api])  # every allowed setting at once still goes through
    [forwarded] = fm.requests
    assert HONEST[api].items() <= forwarded.body.items()


def test_malformed_limits_and_metadata_are_refused(gateway, fm):
    refused(gateway, "openai", "n must be a whole number", n="many")
    refused(gateway, "openai", "tools must be a list of objects", tools=["web_search"])
    refused(gateway, "anthropic", "metadata may hold only user_id", metadata={"url": "x"})
    assert fm.requests == []


SERVER_TOOLS = [
    ("openai", {"type": "web_search_preview"}),
    ("openai", {"type": "file_search", "vector_store_ids": ["vs_1"]}),
    ("openai", {"type": "mcp", "server_label": "m", "server_url": "https://mcp.example"}),
    ("anthropic", {"type": "web_search_20250305", "name": "web_search"}),
    ("anthropic", {"type": "web_fetch_20250910", "name": "web_fetch"}),
    ("anthropic", {"type": "code_execution_20250825", "name": "code_execution"}),
    ("anthropic", {"type": "computer_20250124", "name": "computer"}),
    ("anthropic", {"type": "bash_20250124", "name": "bash"}),
    ("anthropic", {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}),
]


@pytest.mark.parametrize(("api", "tool"), SERVER_TOOLS)
def test_provider_side_tools_are_refused(gateway, fm, api, tool):
    honest = HONEST[api]["tools"]
    refused(gateway, api, f"tool type {tool['type']!r} is not forwarded", tools=[*honest, tool])
    fm.push(Reply("honest"))
    call(gateway, api, tools=honest)
    assert [r.body["tools"] for r in fm.requests] == [honest]


def user(*parts: dict) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": "look"}, *parts]}]


def tool_result(*parts: dict) -> list[dict]:
    use = {"type": "tool_use", "id": "t1", "name": "edit", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": list(parts)}
    return [*user(), {"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}]


def source(kind: str, **source) -> dict:
    return {"type": kind, "source": source}


BASE64_PNG = {"type": "base64", "media_type": "image/png", "data": PNG}
FETCHED = [
    (
        "openai",
        user({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}),
        "an image_url must be a data: URL",
    ),
    ("openai", user({"type": "file", "file": {"file_id": "file-1"}}), "part type 'file'"),
    ("openai", user({"type": "input_audio", "input_audio": {}}), "part type 'input_audio'"),
    (
        "anthropic",
        user(source("image", type="url", url="https://example.com/a.png")),
        "a image block's source must be base64, not 'url'",
    ),
    (
        "anthropic",
        user(source("document", type="url", url="https://example.com/a.pdf")),
        "a document block's source must be text, not 'url'",
    ),
    (
        "anthropic",
        user(source("document", type="file", file_id="file_1")),
        "a document block's source must be text, not 'file'",
    ),
    (
        "anthropic",  # a compressed PDF's pages may cost far more tokens than its bytes
        user(source("document", type="base64", media_type="application/pdf", data="JVBERi0=")),
        "a document block's source must be text, not 'base64'",
    ),
    (
        "anthropic",
        tool_result(source("image", type="url", url="https://example.com/a.png")),
        "a image block's source must be base64, not 'url'",
    ),
    (
        "anthropic",
        user({"type": "container_upload", "file_id": "file_1"}),
        "content block type 'container_upload'",
    ),
    (
        "anthropic",
        user({"type": "mcp_tool_use", "id": "m", "name": "f", "server_name": "s", "input": {}}),
        "content block type 'mcp_tool_use'",
    ),
]
CONTROLS = {
    "openai": user({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}),
    "anthropic": tool_result(
        source("image", **BASE64_PNG),
        source("document", type="text", media_type="text/plain", data="a plain note"),
    ),
}


@pytest.mark.parametrize(("api", "messages", "message"), FETCHED)
def test_content_the_provider_would_fetch_is_refused(gateway, fm, api, messages, message):
    refused(gateway, api, message, messages=messages)
    fm.push(Reply("honest"))
    call(gateway, api, messages=CONTROLS[api])  # inline images and text go through
    assert [r.body["messages"] for r in fm.requests] == [CONTROLS[api]]


@pytest.mark.parametrize(
    ("flags", "refused_flag"),
    [
        ("mcp-client-2025-04-04", "mcp-client-2025-04-04"),
        ("prompt-caching-2024-07-31, web-fetch-2025-09-10", "web-fetch-2025-09-10"),
        ("code-execution-2025-05-22", "code-execution-2025-05-22"),
        ("context-1m-2025-08-07", "context-1m-2025-08-07"),
    ],
)
def test_only_allowed_beta_flags_are_forwarded(gateway, fm, flags, refused_flag):
    message = f"anthropic-beta {refused_flag!r} is not forwarded (allowed: "
    refused(gateway, "anthropic", message, headers={"anthropic-beta": flags})
    fm.push(Reply("honest"))
    allowed = "prompt-caching-2024-07-31, token-efficient-tools-2025-02-19"
    call(gateway, "anthropic", headers={"anthropic-beta": allowed})
    [forwarded] = fm.requests
    assert forwarded.headers["anthropic-beta"] == allowed.replace(" ", "")


def test_a_second_beta_header_is_checked_too(gateway, fm):
    headers = [
        ("x-api-key", gateway.open_unit("agent").token),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "interleaved-thinking-2025-05-14"),
        ("anthropic-beta", "mcp-client-2025-04-04"),
    ]
    body = {"model": HAIKU, "max_tokens": 10, "messages": HELLO}
    with raw_client(gateway) as client:
        answer = client.post("/v1/messages", json=body, headers=headers)
    assert answer.status_code == 400
    assert "'mcp-client-2025-04-04' is not forwarded" in answer.json()["error"]["message"]
    assert fm.requests == []


# -- bodies and errors ----------------------------------------------------------------------


def send_raw(gw: Gateway, head: bytes, body: Iterator[bytes]) -> tuple[bytes, int]:
    """Send a request over the gateway's socket as fast as the gateway reads it; returns its
    answer and how many bytes of the body it took before closing the connection."""
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(30)
        connection.connect(gw.socket_path)
        connection.sendall(head)
        sent = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for piece in body:
                connection.sendall(piece)
                sent += len(piece)
        answer = b""
        with contextlib.suppress(ConnectionResetError):  # it closed with our body unread
            while data := connection.recv(65536):
                answer += data
    return answer, sent


@pytest.mark.parametrize("declared", [True, False])
def test_a_400_mb_body_is_refused_without_being_read(gateway, fm, declared):
    token = gateway.open_unit("agent").token
    total, megabyte = 400 * 1024 * 1024, b"x" * (1024 * 1024)
    framing = f"content-length: {total}" if declared else "transfer-encoding: chunked"
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\n"
        f"authorization: Bearer {token}\r\ncontent-type: application/json\r\n{framing}\r\n\r\n"
    ).encode()

    def body() -> Iterator[bytes]:
        for _ in range(400):
            yield from (megabyte,) if declared else (b"100000\r\n", megabyte, b"\r\n")

    tracemalloc.start()
    try:
        answer, sent = send_raw(gateway, head, body())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"the request is over 32 MB" in answer
    assert sent < MAX_REQUEST_BYTES + 16 * 1024 * 1024  # the gateway stopped reading
    assert peak < 80 * 1024 * 1024  # at most the 32 MB it reads, not 400
    fm.push(Reply("honest"))  # a large body under the limit still goes through
    big = [{"role": "user", "content": "y" * (8 * 1024 * 1024)}]
    openai_client(gateway, gateway.open_unit("honest")).chat.completions.create(
        model="gpt-4o", messages=big, max_tokens=10
    )
    assert fm.requests[0].body["messages"] == big


def test_an_unreachable_provider_is_named_not_its_url_or_credentials(fm, store):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    secret_url = f"http://dgm:hunter2-secret@127.0.0.1:{port}/v1?key=sk-in-the-query"
    settings = settings_for(fm)
    settings.openai = Upstream(base_url=secret_url, api_key="sk-real-key")
    with Gateway(settings, store) as gw, raw_client(gw) as client:
        token = gw.open_unit("u").token
        body = {"model": "gpt-4o", "messages": HELLO, "max_tokens": 10}
        auth = {"authorization": f"Bearer {token}"}
        answer = client.post("/v1/chat/completions", json=body, headers=auth)
        fm.push(Reply("honest"))  # the other provider still answers
        honest = client.post(
            "/v1/messages", json={**body, "model": HAIKU}, headers={"x-api-key": token}
        )
    assert answer.status_code == 502
    assert answer.json()["error"]["message"] == "the openai provider could not be reached"
    for secret in ("hunter2", "sk-", "127.0.0.1", str(port), "dgm:"):
        assert secret not in answer.text
    assert honest.status_code == 200
    assert [c.status for c in store.fm_calls()] == ["unreachable", "ok"]


def test_a_slow_provider_times_out_and_the_call_is_charged_its_worst_case(fm, store):
    def never_in_time(request):
        time.sleep(1.0)
        return Reply("too late", input_tokens=10, output_tokens=10)

    fm.responder = never_in_time
    with Gateway(settings_for(fm, timeout_s=0.3), store) as gw:
        client = openai_client(gw, gw.open_unit("u"))
        with pytest.raises(openai.APIStatusError, match="the openai provider did not answer"):
            client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=100)
        spent = gw.ledger.spent
    [row] = store.fm_calls()
    # it may have finished and charged for it upstream: charged what the call reserved
    assert (row.status, row.output_tokens) == ("timeout", 100)
    assert PROMPT_TOKENS < row.input_tokens < PROMPT_TOKENS + 300
    assert spent.tokens == row.input_tokens + row.output_tokens


def test_the_providers_refusal_of_the_key_does_not_quote_it(gateway, fm):
    fm.push(Failure(401, f"Incorrect API key provided: {OPENAI_KEY[:3]}****{OPENAI_KEY[-4:]}"))
    with raw_client(gateway) as client:
        token = gateway.open_unit("u").token
        body = {"model": "gpt-4o", "messages": HELLO}
        answer = client.post(
            "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 401
    assert answer.json()["error"]["message"] == "the openai provider refused the gateway's key"
    assert OPENAI_KEY[-4:] not in answer.text
