"""A scripted foundation-model server: the OpenAI and Anthropic wire formats on 127.0.0.1.

It answers each request with the next entry of its script (text, tool calls, or an HTTP
failure), in whichever format was asked for, streaming when asked, and keeps every request it
got, so tests drive the real SDKs end to end. Nothing here is a model: it says what it is told.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ids = itertools.count(1)


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: f"call_{next(_ids)}")


@dataclass
class Reply:
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    input_tokens: int = 100
    output_tokens: int = 20
    model: str | None = None  # default: the model the request named
    chunk_delay_s: float = 0.0  # pause between streamed pieces


@dataclass
class Failure:
    status: int
    message: str = "scripted failure"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class ScriptedFM:
    def __init__(
        self,
        *script: Reply | Failure,
        responder: Callable[[Request], Reply | Failure] | None = None,
    ):
        """`responder` answers whatever the script does not (requests arriving in any order)."""
        self.script: deque[Reply | Failure] = deque(script)
        self.responder = responder
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.openai_base_url = self.url + "/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def push(self, *entries: Reply | Failure) -> None:
        with self._lock:
            self.script.extend(entries)

    def next_entry(self, request: Request) -> Reply | Failure:
        with self._lock:
            self.requests.append(request)
            if self.script:
                return self.script.popleft()
        if self.responder is not None:
            return self.responder(request)
        return Failure(410, "the scripted FM server has no reply left")

    def __enter__(self) -> ScriptedFM:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(fm: ScriptedFM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else small writes wait 40 ms for delayed ACKs

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            request = Request(self.path, headers, json.loads(raw or b"{}"))
            wire = {"/v1/chat/completions": OPENAI, "/v1/messages": ANTHROPIC}.get(self.path)
            entry = fm.next_entry(request) if wire else Failure(404, f"no route {self.path}")
            if isinstance(entry, Failure):
                error = (wire or OPENAI).error(entry)
                return self._send(entry.status, error, entry.headers)
            model = entry.model or request.body.get("model", "scripted")
            if not request.body.get("stream"):
                return self._send(200, wire.message(entry, model))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")  # as the providers stream
            self.end_headers()
            options = request.body.get("stream_options") or {}
            try:
                for event in wire.events(entry, model, bool(options.get("include_usage"))):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                    time.sleep(entry.chunk_delay_s)
                self.wfile.write(b"0\r\n\r\n")
            except BrokenPipeError:
                self.close_connection = True  # the client hung up mid-stream

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _pieces(text: str, size: int = 8) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


class OPENAI:
    @staticmethod
    def error(failure: Failure) -> dict[str, Any]:
        return {"error": {"message": failure.message, "type": "scripted", "code": None}}

    @staticmethod
    def message(reply: Reply, model: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in reply.tool_calls
            ]
        return {
            "id": f"chatcmpl-{next(_ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": _finish(reply)}],
            "usage": _openai_usage(reply),
        }

    @staticmethod
    def events(reply: Reply, model: str, include_usage: bool) -> list[bytes]:
        head = {"id": f"chatcmpl-{next(_ids)}", "object": "chat.completion.chunk", "model": model}
        head["created"] = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        chunks = [chunk({"role": "assistant", "content": ""})]
        chunks += [chunk({"content": piece}) for piece in _pieces(reply.text)]
        for index, call in enumerate(reply.tool_calls):
            function = {"name": call.name, "arguments": ""}
            start = {"index": index, "id": call.id, "type": "function", "function": function}
            chunks.append(chunk({"tool_calls": [start]}))
            for piece in _pieces(json.dumps(call.arguments)):
                more = {"index": index, "function": {"arguments": piece}}
                chunks.append(chunk({"tool_calls": [more]}))
        chunks.append(chunk({}, _finish(reply)))
        if include_usage:
            chunks.append({**head, "choices": [], "usage": _openai_usage(reply)})
        return [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]


class ANTHROPIC:
    @staticmethod
    def error(failure: Failure) -> dict[str, Any]:
        return {"type": "error", "error": {"type": "scripted", "message": failure.message}}

    @staticmethod
    def message(reply: Reply, model: str) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        content += [
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
            for call in reply.tool_calls
        ]
        return {
            "id": f"msg_{next(_ids)}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
        }

    @staticmethod
    def events(reply: Reply, model: str, include_usage: bool) -> list[bytes]:
        start = ANTHROPIC.message(Reply(input_tokens=reply.input_tokens, output_tokens=1), model)
        start["stop_reason"] = None
        events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        if reply.text:
            deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(reply.text)]
            blocks.append(({"type": "text", "text": ""}, deltas))
        for call in reply.tool_calls:
            block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            pieces = _pieces(json.dumps(call.arguments))
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
            blocks.append((block, deltas))
        for index, (block, deltas) in enumerate(blocks):
            events.append({"type": "content_block_start", "index": index, "content_block": block})
            events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
            events.append({"type": "content_block_stop", "index": index})
        stop = {"stop_reason": "tool_use" if reply.tool_calls else "end_turn"}
        events.append(
            {
                "type": "message_delta",
                "delta": {**stop, "stop_sequence": None},
                "usage": {"output_tokens": reply.output_tokens},
            }
        )
        events.append({"type": "message_stop"})
        return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


def _finish(reply: Reply) -> str:
    return "tool_calls" if reply.tool_calls else "stop"


def _openai_usage(reply: Reply) -> dict[str, int]:
    total = reply.input_tokens + reply.output_tokens
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": total,
    }
