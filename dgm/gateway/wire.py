"""The two wire formats the gateway speaks: OpenAI chat completions and Anthropic messages.

Each knows its route, where a client puts its key, which headers go upstream, how an error
looks (so the SDKs raise their usual exceptions, carrying our message), and where a response
reports its token usage: in one JSON body, or spread over server-sent events when streaming.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass
class Usage:
    """Tokens and model of one call, filled in as the response arrives."""

    input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None


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
    forwarded: ClassVar[tuple[str, ...]] = ()
    metered: ClassVar[tuple[bytes, ...]] = (b'"usage"',)  # stream events worth parsing

    @staticmethod
    def auth_headers(api_key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"}

    @staticmethod
    def error_body(kind: str, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": kind, "param": None, "code": kind}}

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
    forwarded: ClassVar[tuple[str, ...]] = ("anthropic-version", "anthropic-beta")
    metered: ClassVar[tuple[bytes, ...]] = (b"message_start", b"message_delta", b"message_stop")

    @staticmethod
    def auth_headers(api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    @staticmethod
    def error_body(kind: str, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": kind, "message": message}}

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
