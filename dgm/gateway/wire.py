"""The two wire formats the gateway speaks: OpenAI chat completions and Anthropic messages.

Each knows its route, where a client puts its key, what of a request it forwards (fields,
tools, content and headers from an allowlist: nothing that makes the provider reach the network
for the agent), how an error looks (so the SDKs raise their usual exceptions, carrying our
message), and where a response reports its token usage: in one JSON body, or spread over
server-sent events when streaming.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from starlette.datastructures import Headers


@dataclass
class Usage:
    """Tokens and model of one call, filled in as the response arrives."""

    input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None


class Refused(ValueError):
    """A request the gateway does not forward; the message names what and why."""


class Admitted(NamedTuple):
    """What the gateway needs to know of a request it forwards, to reserve its worst case."""

    output_tokens: int  # the most it can produce, after the output limit is capped
    images: int  # images cost by their pixels, not by their (compressed) bytes


def client_token(headers: Mapping[str, str]) -> str | None:
    """The key a client sent: the OpenAI SDK uses a bearer token, Anthropic's `x-api-key`."""
    if key := headers.get("x-api-key"):
        return key
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


class OpenAIChat:
    name: ClassVar[str] = "openai"
    route: ClassVar[str] = "/v1/chat/completions"
    upstream_path: ClassVar[str] = "/chat/completions"  # below a base URL ending in /v1
    metered: ClassVar[tuple[bytes, ...]] = (b'"usage"',)  # stream events worth parsing
    # what a request may hold; any other field (web_search_options, audio, modalities,
    # prediction, store, service_tier...) is refused
    fields: ClassVar[frozenset[str]] = frozenset(
        {
            *("model", "messages", "tools", "tool_choice", "parallel_tool_calls"),
            *("temperature", "top_p", "top_k", "stop", "seed", "frequency_penalty"),
            *("presence_penalty", "logit_bias", "logprobs", "top_logprobs"),
            *("max_tokens", "max_completion_tokens", "n", "stream", "stream_options"),
            *("response_format", "reasoning_effort", "user"),
        }
    )

    @staticmethod
    def auth_headers(api_key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"}

    @staticmethod
    def error_body(kind: str, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": kind, "param": None, "code": kind}}

    @staticmethod
    def headers(headers: Headers) -> dict[str, str]:
        return {}  # nothing of the agent's

    @classmethod
    def admit(cls, body: dict[str, Any], max_output: int) -> Admitted:
        """Refuse what is not forwarded; lower the output limit to `max_output` (filling it in
        when absent)."""
        _only(body, cls.fields)
        for tool in _objects(body.get("tools"), "tools"):
            if tool.get("type") != "function":
                kind = tool.get("type")
                raise Refused(f"tool type {kind!r} is not forwarded (only function tools are)")
        images = 0
        for message in _objects(body.get("messages"), "messages"):
            for part in _objects(message.get("content"), "content"):
                kind, image = part.get("type"), part.get("image_url")
                if kind == "image_url":
                    url = image.get("url") if isinstance(image, dict) else None
                    if not (isinstance(url, str) and url.startswith("data:")):
                        raise Refused("an image_url must be a data: URL, not one to fetch")
                    images += 1
                elif kind not in ("text", "refusal"):
                    raise Refused(f"content part type {kind!r} is not forwarded")
        limits = [k for k in ("max_completion_tokens", "max_tokens") if body.get(k) is not None]
        limits = limits or ["max_completion_tokens"]  # the name every OpenAI model takes
        for key in limits:
            body[key] = min(_whole(body, key, max_output), max_output)
        return Admitted(max(body[k] for k in limits) * _whole(body, "n", 1), images)

    @staticmethod
    def prepare(body: dict[str, Any]) -> bool:
        """Ask a stream for its usage; True when the client did not, so that chunk is dropped."""
        if not body.get("stream"):
            return False
        options = body.get("stream_options") or {}
        if options.get("include_usage"):
            return False
        body["stream_options"] = {**options, "include_usage": True}
        return True

    @staticmethod
    def read(message: dict[str, Any], usage: Usage) -> bool:
        """Take usage from a body or a stream chunk; True when the chunk carries only usage."""
        usage.model = message.get("model") or usage.model
        counts = message.get("usage")
        if counts:
            usage.input_tokens = counts.get("prompt_tokens") or 0
            usage.output_tokens = counts.get("completion_tokens") or 0
        return bool(counts) and not message.get("choices")

    @staticmethod
    def ends(event: bytes, data: dict[str, Any] | None) -> bool:
        return event.startswith(b"data: [DONE]")


class AnthropicMessages:
    name: ClassVar[str] = "anthropic"
    route: ClassVar[str] = "/v1/messages"
    upstream_path: ClassVar[str] = "/v1/messages"  # below https://api.anthropic.com
    metered: ClassVar[tuple[bytes, ...]] = (b"message_start", b"message_delta", b"message_stop")
    # what a request may hold; any other field (mcp_servers, container, service_tier...) is refused
    fields: ClassVar[frozenset[str]] = frozenset(
        {
            *("model", "messages", "system", "tools", "tool_choice", "max_tokens"),
            *("temperature", "top_p", "top_k", "stop_sequences", "stream", "metadata"),
            "thinking",
        }
    )
    # content blocks forwarded as they are: none refers to anything for the provider to fetch
    blocks: ClassVar[frozenset[str]] = frozenset(
        {"text", "tool_use", "tool_result", "thinking", "redacted_thinking"}
    )
    # the one source image and document blocks may have: not a url or file (fetched), nor a
    # base64 document (a PDF, whose compressed pages can cost far more tokens than it has
    # bytes, so no reservation bounds it)
    sources: ClassVar[dict[str, str]] = {"image": "base64", "document": "text"}
    # `anthropic-beta` flags forwarded: features that change how a model answers, not what it
    # can reach. Any other is refused (mcp-client-..., web-fetch-..., code-execution-... reach
    # the network; context-1m-2025-08-07 bills long prompts at a premium prices.py lacks).
    betas: ClassVar[frozenset[str]] = frozenset(
        {
            "prompt-caching-2024-07-31",
            "token-efficient-tools-2025-02-19",
            "interleaved-thinking-2025-05-14",
            "output-128k-2025-02-19",
            "fine-grained-tool-streaming-2025-05-14",
        }
    )

    @staticmethod
    def auth_headers(api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    @staticmethod
    def error_body(kind: str, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": kind, "message": message}}

    @classmethod
    def headers(cls, headers: Headers) -> dict[str, str]:
        """The agent's headers that go upstream: its API version and allowed beta flags."""
        flags = [f.strip() for v in headers.getlist("anthropic-beta") for f in v.split(",")]
        flags = [f for f in flags if f]
        if refused := [f for f in flags if f not in cls.betas]:
            allowed = ", ".join(sorted(cls.betas))
            raise Refused(f"anthropic-beta {refused[0]!r} is not forwarded (allowed: {allowed})")
        forwarded = {"anthropic-beta": ",".join(flags)} if flags else {}
        if version := headers.get("anthropic-version"):
            forwarded["anthropic-version"] = version
        return forwarded

    @classmethod
    def admit(cls, body: dict[str, Any], max_output: int) -> Admitted:
        """Refuse what is not forwarded; lower `max_tokens` to `max_output` (filling it in
        when absent)."""
        _only(body, cls.fields)
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict) or set(metadata) - {"user_id"}:
            raise Refused("metadata may hold only user_id")
        for tool in _objects(body.get("tools"), "tools"):
            if tool.get("type") not in (None, "custom"):
                kind = tool["type"]
                raise Refused(f"tool type {kind!r} is not forwarded (only custom tools are)")
        images = 0
        for block in _blocks(body):
            kind, source = block.get("type"), block.get("source")
            if kind in cls.sources:
                found = source.get("type") if isinstance(source, dict) else None
                if found != cls.sources[kind]:
                    expected = cls.sources[kind]
                    raise Refused(f"a {kind} block's source must be {expected}, not {found!r}")
                images += kind == "image"
            elif kind not in cls.blocks:
                raise Refused(f"content block type {kind!r} is not forwarded")
        body["max_tokens"] = min(_whole(body, "max_tokens", max_output), max_output)
        return Admitted(body["max_tokens"], images)

    @staticmethod
    def prepare(body: dict[str, Any]) -> bool:
        return False  # Anthropic streams always report usage

    @staticmethod
    def read(message: dict[str, Any], usage: Usage) -> bool:
        kind = message.get("type")
        if kind == "message_start":  # streaming: input counts come first ...
            message = message.get("message") or {}
        elif kind == "message_delta":  # ... output counts (running totals) with each delta
            _count(message.get("usage") or {}, usage)
            return False
        elif kind != "message":
            return False
        usage.model = message.get("model") or usage.model
        _count(message.get("usage") or {}, usage)
        return False

    @staticmethod
    def ends(event: bytes, data: dict[str, Any] | None) -> bool:
        return data is not None and data.get("type") == "message_stop"


def _count(counts: dict[str, Any], usage: Usage) -> None:
    parts = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    if any(counts.get(part) is not None for part in parts):
        usage.input_tokens = sum(counts.get(part) or 0 for part in parts)
    if counts.get("output_tokens") is not None:
        usage.output_tokens = counts["output_tokens"]


def _only(body: dict[str, Any], fields: frozenset[str]) -> None:
    if extra := sorted(set(body) - fields):
        raise Refused(f"the field {extra[0]!r} is not forwarded by the gateway")


def _objects(value: Any, what: str) -> list[dict[str, Any]]:
    """A list of JSON objects (none for absent or plain text), or Refused."""
    if value is None or isinstance(value, str):
        return []
    if not (isinstance(value, list) and all(isinstance(item, dict) for item in value)):
        raise Refused(f"{what} must be a list of objects")
    return value


def _blocks(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every content block of a messages request, those inside tool results included."""
    messages = _objects(body.get("messages"), "messages")
    for content in [body.get("system"), *(m.get("content") for m in messages)]:
        for block in _objects(content, "content"):
            yield block
            if block.get("type") == "tool_result":
                yield from _objects(block.get("content"), "content")


def _whole(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Refused(f"{key} must be a whole number")
    return value


WIRES = (OpenAIChat, AnthropicMessages)
Wire = type[OpenAIChat] | type[AnthropicMessages]


class EventStream:
    """Splits a server-sent-event byte stream into whole events, parsing the data of those
    that carry one of `markers` (most events are text deltas, not worth decoding)."""

    def __init__(self, markers: tuple[bytes, ...]) -> None:
        self._buffer = b""
        self._markers = markers

    def feed(self, chunk: bytes) -> Iterator[tuple[bytes, dict[str, Any] | None]]:
        self._buffer = (self._buffer + chunk).replace(b"\r\n", b"\n")
        *events, self._buffer = self._buffer.split(b"\n\n")
        for event in events:
            wanted = any(marker in event for marker in self._markers)
            yield event + b"\n\n", _data(event) if wanted else None

    def rest(self) -> bytes:
        """Whatever came after the last whole event (a stream cut short)."""
        rest, self._buffer = self._buffer, b""
        return rest


def _data(event: bytes) -> dict[str, Any] | None:
    lines = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    try:
        data = json.loads(b"\n".join(lines))
    except ValueError:  # OpenAI's closing "[DONE]", or a malformed event passed on as is
        return None
    return data if isinstance(data, dict) else None
