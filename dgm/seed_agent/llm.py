"""Talking to the model through the FM gateway, with the standard library only.

Messages are kept in OpenAI's chat format; for Anthropic models they are converted on the way
out and back. Rate limits, server errors and dropped connections are retried with
exponential backoff; other errors are raised as `LLMError` (with `.kind` saying which).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

RETRIES = 5


class LLMError(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind  # "budget", "context_overflow", "auth" or "failed"


def chat(messages: list[dict], tools: list[dict], model: str, max_tokens: int = 4096) -> dict:
    """One assistant message: {"role": "assistant", "content": str, "tool_calls": [...]}.

    Each tool call is {"id", "type": "function", "function": {"name", "arguments": str}}.
    The answer also carries "usage": {"input_tokens", "output_tokens"}.
    """
    if api_for(model) == "anthropic":
        reply = _post(
            os.environ["ANTHROPIC_BASE_URL"].rstrip("/") + "/v1/messages",
            _to_anthropic(messages, tools, model, max_tokens),
            {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"},
        )
        return _from_anthropic(reply)
    body = {"model": model, "messages": messages, "max_tokens": max_tokens}
    if tools:
        body["tools"] = [{"type": "function", "function": tool} for tool in tools]
    reply = _post(
        os.environ["OPENAI_BASE_URL"].rstrip("/") + "/chat/completions",
        body,
        {"authorization": "Bearer " + os.environ["OPENAI_API_KEY"]},
    )
    message = reply["choices"][0]["message"]
    usage = reply.get("usage") or {}
    return {
        "role": "assistant",
        "content": message.get("content") or "",
        "tool_calls": message.get("tool_calls") or [],
        "usage": {
            "input_tokens": usage.get("prompt_tokens", 0),
            "output_tokens": usage.get("completion_tokens", 0),
        },
    }


def api_for(model: str) -> str:
    return os.environ.get("DGM_API") or ("anthropic" if model.startswith("claude") else "openai")


def _post(url: str, body: dict, headers: dict) -> dict:
    data = json.dumps(body).encode()
    headers = {"content-type": "application/json", **headers}
    for attempt in range(RETRIES + 1):
        try:
            request = urllib.request.Request(url, data=data, headers=headers)
            with urllib.request.urlopen(request, timeout=600) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            if error.code == 402:
                raise LLMError("budget", text) from error
            if error.code in (400, 413) and any(
                s in text.lower() for s in ("context", "too long", "too large", "maximum")
            ):
                raise LLMError("context_overflow", text) from error
            if error.code in (401, 403):
                raise LLMError("auth", text) from error
            retryable = error.code in (408, 409, 429) or error.code >= 500
            if not retryable or attempt == RETRIES:
                raise LLMError("failed", f"HTTP {error.code}: {text}") from error
            delay = float(error.headers.get("retry-after") or 2**attempt)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            if attempt == RETRIES:
                raise LLMError("failed", str(error)) from error
            delay = 2**attempt
        time.sleep(min(delay, 30))
    raise AssertionError("unreachable")


def _to_anthropic(messages: list[dict], tools: list[dict], model: str, max_tokens: int) -> dict:
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    turns: list[dict] = []
    for m in messages:
        if m["role"] == "system":
            continue
        if m["role"] == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m["tool_call_id"],
                "content": m["content"],
            }
            if turns and turns[-1]["role"] == "user" and isinstance(turns[-1]["content"], list):
                turns[-1]["content"].append(block)  # results of one turn go in one message
            else:
                turns.append({"role": "user", "content": [block]})
        elif m["role"] == "assistant":
            blocks = [{"type": "text", "text": m["content"]}] if m.get("content") else []
            for call in m.get("tool_calls") or []:
                try:
                    arguments = json.loads(call["function"]["arguments"] or "{}")
                except ValueError:
                    arguments = {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call["id"],
                        "name": call["function"]["name"],
                        "input": arguments,
                    }
                )
            turns.append({"role": "assistant", "content": blocks})
        else:
            turns.append({"role": "user", "content": m["content"]})
    body = {"model": model, "max_tokens": max_tokens, "messages": turns}
    if system:
        body["system"] = system
    if tools:
        body["tools"] = [
            {"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
            for t in tools
        ]
    return body


def _from_anthropic(reply: dict) -> dict:
    text = "".join(b.get("text", "") for b in reply["content"] if b["type"] == "text")
    calls = [
        {
            "id": b["id"],
            "type": "function",
            "function": {"name": b["name"], "arguments": json.dumps(b["input"])},
        }
        for b in reply["content"]
        if b["type"] == "tool_use"
    ]
    usage = reply.get("usage") or {}
    return {
        "role": "assistant",
        "content": text,
        "tool_calls": calls,
        "usage": {
            "input_tokens": usage.get("input_tokens", 0),
            "output_tokens": usage.get("output_tokens", 0),
        },
    }
