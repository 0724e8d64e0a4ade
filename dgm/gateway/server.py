"""The FM gateway: the only way out of a sandbox, and the only holder of the API keys.

An HTTP server on a Unix socket (Starlette on uvicorn, in a thread of the run's process). A
sandbox gets the socket's folder mounted and a bridge to `127.0.0.1:<port>`, plus a per-unit
token in place of a key. Each call is checked against the unit's and the run's budget,
forwarded with the real key, relayed back as it arrives (streams included), and metered.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import httpx2 as httpx
from pydantic import BaseModel, Field, SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from archive.records import FMCall
from dgm.fm.prices import Price, cost_usd, price_of
from dgm.gateway.ledger import Account, Budget, Ledger, Spend, UsageSink
from dgm.gateway.wire import WIRES, EventStream, Usage, Wire, client_token
from dgm.unix_server import UnixServer

MAX_REQUEST_BYTES = 32 * 1024 * 1024
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


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        sink: UsageSink,
        *,
        run_id: str | None = None,
        spent: Spend | None = None,
    ):
        self.settings = settings
        self.ledger = Ledger(sink, run_id=run_id, budget=settings.budget, spent=spent)
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
        from dgm.fm.client import api_for, connect

        api = api_for(model)
        base_url = "http://gateway/v1" if api == "openai" else "http://gateway"
        return connect(api, model, base_url=base_url, token=lease.token, socket=self.socket_path)

    def close_unit(self, lease: Lease) -> Spend:
        return self.ledger.close(lease.token)

    # -- calls -------------------------------------------------------------------------------

    def _handler(self, wire: Wire):
        async def handle(request: Request) -> Response:
            return await self._call(wire, request)

        return handle

    async def _call(self, wire: Wire, request: Request) -> Response:
        start = time.perf_counter()
        account = self.ledger.account(client_token(request.headers))
        raw = await request.body()
        if len(raw) > MAX_REQUEST_BYTES:
            return _error(wire, 413, "request_too_large", "the request is over 32 MB")
        try:
            body = json.loads(raw)
            model = body["model"]
            assert isinstance(model, str)
        except (ValueError, TypeError, KeyError, AssertionError):
            return _error(wire, 400, "invalid_request_error", "the body must be JSON with a model")

        def record(status: str, usage: Usage | None = None) -> None:
            usage = usage or Usage()
            name = usage.model or model
            tokens = (usage.input_tokens, usage.output_tokens)
            self.ledger.record(
                FMCall(
                    provider=wire.name,
                    model=name,
                    input_tokens=tokens[0],
                    output_tokens=tokens[1],
                    cost_usd=cost_usd(name, *tokens, self.settings.prices),
                    latency_s=time.perf_counter() - start,
                    status=status,
                    run_id=self.ledger.run_id,
                    node_id=account.node_id if account else None,
                    unit_id=account.unit_id if account else None,
                ),
                account,
            )

        if account is None:
            record("unauthorized")
            return _error(wire, 401, "authentication_error", "unknown or expired unit token")
        upstream: Upstream | None = getattr(self.settings, wire.name)
        if upstream is None:
            record("no-provider")
            message = f"this run has no {wire.name} provider; use the other API"
            return _error(wire, 404, "not_found_error", message)
        if reason := self.ledger.refusal(account):
            record("budget-exceeded")
            return _error(wire, 402, "budget_exceeded", reason)

        if self._needs_price(account) and price_of(model, self.settings.prices) is None:
            record("unpriced")
            message = (
                f"no price is known for model {model}, so the USD budget cannot be kept; "
                "add it under the config's prices or budget in tokens"
            )
            return _error(wire, 400, "invalid_request_error", message)

        drop_usage_chunk = wire.prepare(body)
        headers = {
            "content-type": "application/json",
            "accept-encoding": "identity",  # the relay reads usage out of the bytes
            **{h: v for h in wire.forwarded if (v := request.headers.get(h))},
            **(wire.auth_headers(key) if (key := upstream.api_key.get_secret_value()) else {}),
        }
        url = upstream.base_url.rstrip("/") + wire.upstream_path
        client = self._clients[wire.name]
        outgoing = client.build_request(
            "POST", url, headers=headers, content=json.dumps(body) if drop_usage_chunk else raw
        )
        try:
            answer = await client.send(outgoing, stream=True)
        except httpx.TimeoutException:
            record("timeout")
            return _error(wire, 504, "timeout_error", f"{wire.name} did not answer in time")
        except httpx.HTTPError as error:
            record("unreachable")
            return _error(wire, 502, "api_error", f"could not reach {url}: {error}")
        returned = {h: v for h in _RETURNED if (v := answer.headers.get(h))}

        if answer.is_success and answer.headers.get("content-type", "").startswith(
            "text/event-stream"
        ):
            events = self._relay(wire, answer, drop_usage_chunk, record)
            return StreamingResponse(events, status_code=answer.status_code, headers=returned)
        try:
            data = await answer.aread()
        except httpx.HTTPError:
            record("unreachable")
            return _error(wire, 502, "api_error", f"{wire.name} broke off its answer")
        finally:
            await answer.aclose()
        usage = Usage()
        if answer.is_success:
            with contextlib.suppress(ValueError, AttributeError):
                wire.read(json.loads(data), usage)
        record("ok" if answer.is_success else f"error-{answer.status_code}", usage)
        return Response(data, status_code=answer.status_code, headers=returned)

    def _needs_price(self, account: Account) -> bool:
        return account.budget.usd is not None or self.settings.budget.usd is not None

    async def _relay(
        self, wire: Wire, answer: httpx.Response, drop_usage_chunk: bool, record
    ) -> AsyncIterator[bytes]:
        usage, stream, status = Usage(), EventStream(wire.metered), "disconnected"
        try:
            async for chunk in answer.aiter_bytes():
                out = []
                for event, data in stream.feed(chunk):
                    if data is None or not (wire.read(data, usage) and drop_usage_chunk):
                        out.append(event)
                    if wire.ends(event, data):
                        # charged before the agent sees the end, so its next call sees the spend
                        status = "ok"
                        record(status, usage)
                if out:
                    yield b"".join(out)
            if rest := stream.rest():
                yield rest
            if status != "ok":
                status = "cut-short"  # the provider closed the stream without its end event
        except httpx.HTTPError:
            status = "broken-stream"
        finally:
            if status != "ok":  # also when the agent hung up: what it used is still charged
                record(status, usage)
            with anyio.CancelScope(shield=True):  # a hung-up agent cancels this task
                await answer.aclose()


def _error(wire: Wire, status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse(wire.error_body(kind, message), status_code=status)
