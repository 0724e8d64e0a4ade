"""The FM gateway: the only way out of a sandbox, and the only holder of the API keys.

An HTTP server on a Unix socket (Starlette on uvicorn, in a thread of the run's process). A
sandbox gets the socket's folder mounted and a bridge to `127.0.0.1:<port>`, plus a per-unit
token in place of a key. Each call is checked against what the run allows (its models; fields,
tools, content and beta flags from an allowlist), its worst case reserved against the unit's
and the run's budget, forwarded with the real key, relayed back as it arrives (streams
included), and metered.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2 as httpx
from pydantic import BaseModel, Field, SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from archive.records import FMCall
from dgm.fm.prices import Price, cost_usd, price_of
from dgm.gateway.ledger import Account, Budget, Ledger, RunAccount, RunLedger, Spend, UsageSink
from dgm.gateway.wire import WIRES, EventStream, Refused, Usage, Wire, client_token
from dgm.unix_server import UnixServer

MAX_REQUEST_BYTES = 32 * 1024 * 1024
# A call's worst-case input, in tokens, is its body's UTF-8 bytes (every token covers at least
# one byte, and the JSON around the text costs more bytes than a chat template adds tokens),
# plus what costs more tokens than bytes: the provider's own prompt (Anthropic's for tool use
# is up to ~530 tokens) and images, charged by their pixels (at most ~3,800 tokens each:
# gpt-4.1-nano's 1,536 patches at 2.46; ~1,600 on Claude) however small their files.
PROMPT_TOKENS = 1024
IMAGE_TOKENS = 4096
# headers an upstream answer keeps on its way back to the agent
_RETURNED = ("content-type", "retry-after", "retry-after-ms", "request-id", "x-request-id")


class Upstream(BaseModel):
    """A provider the gateway forwards one wire format to."""

    base_url: str
    """OpenAI-style: up to and including `/v1`; Anthropic: the host (`https://api.anthropic.com`)."""
    api_key: SecretStr = SecretStr("")
    socket: str | None = None
    """A Unix socket to reach `base_url` through (the embedded local model's server)."""


class GatewaySettings(BaseModel):
    openai: Upstream | None = None
    anthropic: Upstream | None = None
    budget: Budget = Budget()
    """The run's limit across all its units."""
    unit_budget: Budget = Budget()
    """Each unit's limit unless the unit is given its own."""
    prices: dict[str, Price] = {}
    """USD per million tokens, on top of `dgm.fm.prices.PRICES`."""
    timeout_s: float = Field(600.0, gt=0)
    """Longest wait for an upstream answer (a long completion included)."""
    models: list[str] | None = None
    """The models a call may name (None: any): the run's own, so an agent cannot pick another."""
    max_output_tokens: int = Field(32768, ge=1)
    """Most output tokens a call may ask for: a larger limit is lowered to it, and a call that
    sets none gets it, so every call's worst case is known before it is forwarded."""


@dataclass(frozen=True)
class Lease:
    """A unit's access to the gateway: its token, and the environment an agent needs."""

    unit_id: str
    token: str

    def env(self, port: int) -> dict[str, str]:
        return {
            "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
            "OPENAI_API_KEY": self.token,
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
            "ANTHROPIC_API_KEY": self.token,
        }


def gateway_client(socket_path: str, model: str, lease: Lease):
    """An FM client for `model` that calls through the gateway on `socket_path` as the
    lease's unit."""
    from dgm.fm.client import api_for, connect

    api = api_for(model)
    base_url = "http://gateway/v1" if api == "openai" else "http://gateway"
    return connect(api, model, base_url=base_url, token=lease.token, socket=socket_path)


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        sink: UsageSink | None = None,
        *,
        run_id: str | None = None,
        spent: Spend | None = None,
        run_account: RunAccount | None = None,
        on_answer: Callable[[str, str, Any], None] | None = None,
    ):
        """The run's account is kept here (calls recorded in `sink`), unless `run_account`
        is the one all the run's gateways share. `on_answer(unit, wire, body)` sees each
        whole answer (not a streamed one) before its call is settled: a live view's."""
        self.settings = settings
        self._on_answer = on_answer
        if run_account is None:
            assert sink is not None
            run_account = RunLedger(sink, run_id=run_id, budget=settings.budget, spent=spent)
        self.ledger = Ledger(run_account)
        self.socket_path = ""  # known once started
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._server: UnixServer | None = None

    # -- lifetime ----------------------------------------------------------------------------

    def start(self) -> Gateway:
        app = Starlette(
            routes=[Route(w.route, self._handler(w), methods=["POST"]) for w in WIRES],
            lifespan=self._lifespan,
        )
        self._server = UnixServer(app, "gateway").start()
        self.socket_path = self._server.socket_path
        return self

    def close(self) -> None:
        if self._server:
            self._server.close()
        self.ledger.flush()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        timeout = httpx.Timeout(self.settings.timeout_s, connect=10.0)
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=64)
        async with contextlib.AsyncExitStack() as stack:
            for wire in WIRES:
                upstream: Upstream | None = getattr(self.settings, wire.name)
                if upstream is None:
                    continue
                transport = httpx.AsyncHTTPTransport(uds=upstream.socket, limits=limits)
                self._clients[wire.name] = await stack.enter_async_context(
                    httpx.AsyncClient(timeout=timeout, transport=transport)
                )
            yield

    # -- units -------------------------------------------------------------------------------

    def open_unit(
        self, unit_id: str, *, node_id: str | None = None, budget: Budget | None = None
    ) -> Lease:
        budget = budget or self.settings.unit_budget
        return Lease(unit_id, self.ledger.open(unit_id, node_id=node_id, budget=budget))

    def client(self, model: str, lease: Lease):
        """An FM client for `model` that calls through this gateway as the lease's unit."""
        return gateway_client(self.socket_path, model, lease)

    def close_unit(self, lease: Lease) -> Spend:
        return self.ledger.close(lease.token)

    # -- calls -------------------------------------------------------------------------------

    def _handler(self, wire: Wire):
        async def handle(request: Request) -> Response:
            return await self._call(wire, request)

        return handle

    async def _call(self, wire: Wire, request: Request) -> Response:
        raw = await _body(request)
        if raw is None:  # the rest is not read: the connection closes
            message = "the request is over 32 MB"
            response = _error(wire, 413, "request_too_large", message)
            response.headers["connection"] = "close"
            return response
        try:
            body = json.loads(raw)
            model = body["model"]
            assert isinstance(model, str)
        except (ValueError, TypeError, KeyError, AssertionError):
            return _error(wire, 400, "invalid_request_error", "the body must be JSON with a model")
        meter = _Meter(self, wire, self.ledger.account(client_token(request.headers)), model)
        account = meter.account
        if account is None:
            meter.settle("unauthorized")
            return _error(wire, 401, "authentication_error", "unknown or expired unit token")
        upstream: Upstream | None = getattr(self.settings, wire.name)
        if upstream is None:
            meter.settle("no-provider")
            message = f"this run has no {wire.name} provider; use the other API"
            return _error(wire, 404, "not_found_error", message)
        allowed = self.settings.models
        try:
            if allowed is not None and model not in allowed:
                raise Refused(f"model {model!r} is not one of this run's: {', '.join(allowed)}")
            forwarded = wire.headers(request.headers)
            admitted = wire.admit(body, self.settings.max_output_tokens)
        except Refused as refused:
            meter.settle("refused")
            return _error(wire, 400, "invalid_request_error", str(refused))
        if self._needs_price(account) and price_of(model, self.settings.prices) is None:
            meter.settle("unpriced")
            message = (
                f"no price is known for model {model}, so the USD budget cannot be kept; "
                "add it under the config's prices or budget in tokens"
            )
            return _error(wire, 400, "invalid_request_error", message)
        inputs = len(raw) + PROMPT_TOKENS + admitted.images * IMAGE_TOKENS
        worst = Usage(inputs, admitted.output_tokens)
        # in a thread: on a cluster the run's account is on another machine
        if reason := await anyio.to_thread.run_sync(meter.reserve, worst):
            meter.settle("budget-exceeded")
            return _error(wire, 402, "budget_exceeded", reason)
        try:
            return await self._forward(wire, upstream, forwarded, body, meter)
        except BaseException:  # cancelled as the gateway closes: the provider may still charge
            meter.settle("interrupted", worst)
            raise

    async def _forward(
        self,
        wire: Wire,
        upstream: Upstream,
        forwarded: dict[str, str],
        body: dict[str, Any],
        meter: _Meter,
    ) -> Response:
        drop_usage_chunk = wire.prepare(body)
        headers = {
            "content-type": "application/json",
            "accept-encoding": "identity",  # the relay reads usage out of the bytes
            **forwarded,
            **(wire.auth_headers(key) if (key := upstream.api_key.get_secret_value()) else {}),
        }
        client = self._clients[wire.name]
        url = upstream.base_url.rstrip("/") + wire.upstream_path
        # the body as checked, not as sent: the provider reads exactly what was admitted
        outgoing = client.build_request("POST", url, headers=headers, content=json.dumps(body))
        try:
            answer = await client.send(outgoing, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout):  # nothing reached the provider
            meter.settle("unreachable")
            return _error(wire, 502, "api_error", f"the {wire.name} provider could not be reached")
        except httpx.HTTPError as error:
            return _lost(wire, meter, error)
        returned = {h: v for h in _RETURNED if (v := answer.headers.get(h))}
        if answer.is_success and answer.headers.get("content-type", "").startswith(
            "text/event-stream"
        ):
            return _Relay(wire, answer, drop_usage_chunk, meter, returned)
        try:
            data = await answer.aread()
        except httpx.HTTPError as error:
            return _lost(wire, meter, error)
        finally:
            await answer.aclose()
        usage = Usage()
        if answer.is_success:
            with contextlib.suppress(ValueError, AttributeError):
                parsed = json.loads(data)
                wire.read(parsed, usage)
                if self._on_answer and meter.account:
                    self._on_answer(meter.account.unit_id, wire.name, parsed)
        meter.settle("ok" if answer.is_success else f"error-{answer.status_code}", usage)
        if answer.status_code == 401:  # about the gateway's key, which the message may quote
            message = f"the {wire.name} provider refused the gateway's key"
            return _error(wire, 401, "authentication_error", message)
        return Response(data, status_code=answer.status_code, headers=returned)

    def _needs_price(self, account: Account) -> bool:
        return account.budget.usd is not None or self.settings.budget.usd is not None


class _Meter:
    """One call in the ledger: the worst case it holds, and the record that settles it (once,
    however the call ends)."""

    def __init__(self, gateway: Gateway, wire: Wire, account: Account | None, model: str):
        self._ledger, self._prices, self._wire = gateway.ledger, gateway.settings.prices, wire
        self.account, self.model = account, model
        self.worst = Usage()  # what the call may use, once reserved
        self._held = Spend()
        self._settled = False
        self._start = time.perf_counter()

    def reserve(self, worst: Usage) -> str | None:
        """Hold `worst` against the unit's and the run's budget; why it does not fit, or None."""
        assert self.account is not None
        tokens = (worst.input_tokens, worst.output_tokens)
        held = Spend(sum(tokens), cost_usd(self.model, *tokens, self._prices))
        if reason := self._ledger.reserve(self.account, held):
            return reason
        self.worst, self._held = worst, held
        return None

    def settle(self, status: str, usage: Usage | None = None) -> None:
        """Release what the call holds and charge `usage` (none: nothing); later calls do
        nothing."""
        if self._settled:
            return
        self._settled = True
        usage = usage or Usage()
        name = usage.model or self.model
        tokens = (usage.input_tokens, usage.output_tokens)
        call = FMCall(
            provider=self._wire.name,
            model=name,
            input_tokens=tokens[0],
            output_tokens=tokens[1],
            cost_usd=cost_usd(name, *tokens, self._prices),
            latency_s=time.perf_counter() - self._start,
            status=status,
            run_id=self._ledger.run_id,
            node_id=self.account.node_id if self.account else None,
            unit_id=self.account.unit_id if self.account else None,
        )
        self._ledger.settle(call, self.account, self._held)


class _Relay(StreamingResponse):
    """An upstream stream relayed event by event, metered as it passes, and settled however
    it ends: its end event, the provider breaking off, or the agent hanging up (even before
    the first byte)."""

    def __init__(
        self,
        wire: Wire,
        answer: httpx.Response,
        drop_usage_chunk: bool,
        meter: _Meter,
        headers: dict[str, str],
    ):
        super().__init__(self._events(), status_code=answer.status_code, headers=headers)
        self._wire, self._answer, self._drop, self._meter = wire, answer, drop_usage_chunk, meter
        self._usage = Usage()
        self._relayed = 0  # bytes, an upper bound on the output tokens they carry
        self._status = "disconnected"  # unless the stream ends first

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):  # a hung-up agent cancels this task
                await self.body_iterator.aclose()
                await self._answer.aclose()
            # cut short: what the stream reported or, where that is less, what it may have
            # used (an OpenAI stream reports usage only at its end; Anthropic's input first)
            reported = self._usage
            used = Usage(
                reported.input_tokens or self._meter.worst.input_tokens,
                max(reported.output_tokens, self._relayed),
                reported.model,
            )
            self._meter.settle(self._status, used)

    async def _events(self) -> AsyncIterator[bytes]:
        wire, usage, stream = self._wire, self._usage, EventStream(self._wire.metered)
        try:
            async for chunk in self._answer.aiter_bytes():
                out = []
                for event, data in stream.feed(chunk):
                    if data is None or not (wire.read(data, usage) and self._drop):
                        out.append(event)
                    if wire.ends(event, data):
                        # charged before the agent sees the end, so its next call sees the spend
                        self._meter.settle("ok", usage)
                if relayed := b"".join(out):
                    self._relayed += len(relayed)
                    yield relayed
            if rest := stream.rest():
                self._relayed += len(rest)
                yield rest
            self._status = "cut-short"  # unless settled: no end event came
        except httpx.HTTPError:
            self._status = "broken-stream"


async def _body(request: Request) -> bytearray | None:
    """The request's body, or None when it is over MAX_REQUEST_BYTES: known from its
    Content-Length before reading, or counted as it arrives (never all read into memory)."""
    if int(request.headers.get("content-length") or 0) > MAX_REQUEST_BYTES:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            return None
    return body


def _lost(wire: Wire, meter: _Meter, error: httpx.HTTPError) -> JSONResponse:
    """An answer lost on its way (timed out, broken off): the provider may have done the work
    and charged for it, so the call is charged its worst case."""
    if isinstance(error, httpx.TimeoutException):
        meter.settle("timeout", meter.worst)
        message = f"the {wire.name} provider did not answer in time"
        return _error(wire, 504, "timeout_error", message)
    meter.settle("broken-answer", meter.worst)
    return _error(wire, 502, "api_error", f"the {wire.name} provider broke off its answer")


def _error(wire: Wire, status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse(wire.error_body(kind, message), status_code=status)
