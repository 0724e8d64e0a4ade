"""Host-side FM clients: the official SDKs behind one protocol, pointed at the gateway.

The engine's own FM calls (diagnosing a failure, proposing an improvement) go through the
gateway like an agent's, so every call is metered and budgeted in one place. The SDKs retry
rate limits, 5xx and timeouts with exponential backoff (honouring `retry-after`); what is
left becomes one of `dgm.fm.errors`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anthropic
import httpx2 as httpx
import openai

from dgm.fm.errors import BudgetExceeded, ContextOverflow, FMAuthError, FMError, FMUnavailable

Api = Literal["openai", "anthropic"]
RETRIES = 4
# how providers say a prompt is too long (OpenAI's code, Anthropic's and llama.cpp's wording)
_OVERFLOW = ("context_length_exceeded", "prompt is too long", "exceed context window")


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Completion:
    text: str
    model: str
    input_tokens: int
    output_tokens: int
    tool_calls: list[ToolCall] = field(default_factory=list)


class FMClient(Protocol):
    model: str

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        system: str = "",
        max_tokens: int = 4096,
        tools: list[ToolSpec] | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        """One model answer to `messages` ({"role": "user"|"assistant", "content": str}).
        `json_schema`: ask for a JSON answer of that shape where the API can hold the model to
        it (OpenAI's structured outputs, the local model's grammar); the prompt must ask too."""


def api_for(model: str) -> Api:
    """The wire format a model is reached with: Anthropic's for Claude, else OpenAI's."""
    return "anthropic" if model.startswith("claude") else "openai"


def connect(api: Api, model: str, *, base_url: str, token: str, socket: str | None = None):
    """A client for `model` through `base_url` (over a Unix socket when given)."""
    http = httpx.Client(transport=httpx.HTTPTransport(uds=socket)) if socket else None
    options = {"api_key": token, "max_retries": RETRIES, "http_client": http, "timeout": 600.0}
    if api == "anthropic":
        return AnthropicClient(model, anthropic.Anthropic(base_url=base_url, **options))
    return OpenAIClient(model, openai.OpenAI(base_url=base_url, **options))


class OpenAIClient:
    """OpenAI, and any server speaking its chat-completions format (vLLM, Ollama, llama.cpp)."""

    def __init__(self, model: str, sdk: openai.OpenAI):
        self.model, self._sdk = model, sdk

    def complete(
        self, messages, *, system="", max_tokens=4096, tools=None, json_schema=None
    ) -> Completion:
        chat = ([{"role": "system", "content": system}] if system else []) + list(messages)
        extra: dict[str, Any] = {}
        if json_schema:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": json_schema},
            }
        if tools:
            extra["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in tools
            ]
        with _translated(openai):
            answer = self._sdk.chat.completions.create(
                model=self.model, messages=chat, max_tokens=max_tokens, **extra
            )
        message = answer.choices[0].message
        calls = [
            ToolCall(c.id, c.function.name, _arguments(c.function.arguments))
            for c in message.tool_calls or []
        ]
        usage = answer.usage
        return Completion(
            text=message.content or "",
            model=answer.model,
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
            tool_calls=calls,
        )


class AnthropicClient:
    def __init__(self, model: str, sdk: anthropic.Anthropic):
        self.model, self._sdk = model, sdk

    def complete(
        self, messages, *, system="", max_tokens=4096, tools=None, json_schema=None
    ) -> Completion:
        # no structured outputs in the messages API: the prompt asks for the JSON
        extra: dict[str, Any] = {"system": system} if system else {}
        if tools:
            extra["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in tools
            ]
        with _translated(anthropic):
            answer = self._sdk.messages.create(
                model=self.model, messages=list(messages), max_tokens=max_tokens, **extra
            )
        return Completion(
            text="".join(b.text for b in answer.content if b.type == "text"),
            model=answer.model,
            input_tokens=answer.usage.input_tokens,
            output_tokens=answer.usage.output_tokens,
            tool_calls=[
                ToolCall(b.id, b.name, dict(b.input))
                for b in answer.content
                if b.type == "tool_use"
            ],
        )


def _arguments(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {"_unparsed": raw}  # left for the caller to report as a format failure
    return value if isinstance(value, dict) else {"_unparsed": raw}


@contextlib.contextmanager
def _translated(sdk: Any) -> Iterator[None]:
    """Turns an SDK's exceptions into `dgm.fm.errors` (both SDKs share the same names)."""
    try:
        yield
    except sdk.APIError as error:
        raise _translate(sdk, error) from error


def _translate(sdk: Any, error: Exception) -> FMError:
    message = _message(error)
    status = getattr(error, "status_code", None)
    if isinstance(error, sdk.AuthenticationError):
        return FMAuthError(f"the FM provider refused the key: {message}")
    if status == 402 and "budget" in message:
        return BudgetExceeded(message)
    if any(marker in message.lower() for marker in _OVERFLOW):
        return ContextOverflow(message)
    if isinstance(error, (sdk.APIConnectionError, sdk.RateLimitError)) or (status or 0) >= 500:
        return FMUnavailable(f"the FM is unavailable after {RETRIES} retries: {message}")
    return FMError(f"the FM call failed: {message}")


def _message(error: Exception) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            code = inner.get("code") or inner.get("type") or ""
            return f"{inner['message']} ({code})" if code else str(inner["message"])
    return str(error)


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in a model's answer (models wrap it in prose or fences)."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
