"""An agent's trajectory (the JSON lines the seed agent writes: `model`, `tool`,
`model_error`, `stop`) read as a conversation: for the web UI, for `dgm show --trajectory`,
and in mini-swe-agent's trajectory format for its inspector. A trajectory came out of a
sandbox: any line may be anything, so each is read defensively and kept as an event when it
is not what the seed agent writes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

TEXT_CHARS = 20_000  # of one message or tool output shown
TURNS = 400  # of a trajectory shown


@dataclass
class Turn:
    kind: str
    """`assistant`, `tool`, or `event` (anything else the agent logged)."""
    text: str = ""
    calls: list[dict[str, str]] = field(default_factory=list)
    name: str = ""
    ok: bool = True
    step: int | None = None


def entries(trajectory: bytes | None) -> list[dict[str, Any] | str]:
    """Each line of a trajectory: its JSON object, or the line itself when it is none."""
    found: list[dict[str, Any] | str] = []
    for line in (trajectory or b"").decode(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        found.append(entry if isinstance(entry, dict) else line)
    return found


def conversation(trajectory: bytes | None) -> tuple[list[Turn], int]:
    """The trajectory's turns (at most TURNS) and how many lines were left out."""
    lines = entries(trajectory)
    turns = [
        _turn(entry) if isinstance(entry, dict) else Turn("event", _cut(entry))
        for entry in lines[:TURNS]
    ]
    return turns, max(0, len(lines) - TURNS)


def _turn(entry: dict[str, Any]) -> Turn:
    kind, step = entry.get("type"), entry.get("step")
    step = step if isinstance(step, int) else None
    if kind == "model" and isinstance(entry.get("message"), dict):
        message = entry["message"]
        calls = []
        for call in message.get("tool_calls") or []:
            function = call.get("function", {}) if isinstance(call, dict) else {}
            if isinstance(function, dict):
                calls.append(
                    {
                        "name": _cut(str(function.get("name", ""))),
                        "arguments": _cut(_pretty(function.get("arguments"))),
                    }
                )
        return Turn("assistant", _cut(str(message.get("content") or "")), calls, step=step)
    if kind == "tool" and isinstance(entry.get("call"), dict):
        call = entry["call"]
        name = _cut(str(call.get("name", "")))
        arguments = _cut(_pretty(call.get("arguments")))
        output = _cut(str(entry.get("result", "")))
        ok = bool(entry.get("ok", True))
        return Turn("tool", output, [{"name": name, "arguments": arguments}], name, ok, step)
    rest = {k: v for k, v in entry.items() if k not in ("type", "time", "step")}
    return Turn("event", _cut(json.dumps(rest, default=str)), name=_cut(str(kind)), step=step)


def _pretty(arguments: Any) -> str:
    """Tool arguments as the model sent them (a JSON string), indented when they parse."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return arguments
    return json.dumps(arguments, indent=2, default=str)


def _cut(text: str) -> str:
    if len(text) <= TEXT_CHARS:
        return text
    return text[:TEXT_CHARS] + f"\n[... {len(text) - TEXT_CHARS} more characters]"


def mini_swe_agent(
    trajectory: bytes | None, *, submission: str, cost_usd: float, status: str
) -> dict[str, Any]:
    """The trajectory in mini-swe-agent's format (`trajectory_format` mini-swe-agent-1.1):
    the conversation as OpenAI chat messages, whole, and `info` with `exit_status` (why the
    agent stopped, as it said, else the result's status), `submission` (the patch graded),
    and `model_stats` (`instance_cost`: what the gateway metered for the attempt;
    `api_calls`: the model calls the trajectory shows)."""
    messages: list[dict[str, Any]] = []
    pending: list[str] = []  # ids of the last answer's tool calls, in order
    calls, stopped = 0, None
    for entry in entries(trajectory):
        kind = entry.get("type") if isinstance(entry, dict) else None
        if kind == "model" and isinstance(entry.get("message"), dict):
            calls += 1
            message = entry["message"]
            tool_calls = [
                c for c in message.get("tool_calls") or []
                if isinstance(c, dict) and isinstance(c.get("function"), dict)
            ]  # fmt: skip
            pending = [str(c.get("id") or f"call_{calls}_{i}") for i, c in enumerate(tool_calls)]
            answer: dict[str, Any] = {"role": "assistant", "content": _text(message.get("content"))}
            if tool_calls:
                answer["tool_calls"] = [
                    {"id": call_id, "type": "function", "function": {
                        "name": str(c["function"].get("name", "")),
                        "arguments": _arguments(c["function"].get("arguments")),
                    }}
                    for call_id, c in zip(pending, tool_calls, strict=True)
                ]  # fmt: skip
            messages.append(answer)
        elif kind == "tool" and isinstance(entry.get("call"), dict):
            call_id = pending.pop(0) if pending else f"call_{calls}_unanswered"
            output = _text(entry.get("result"))
            messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
        elif kind == "stop":
            stopped = _text(entry.get("reason"))
        else:  # a model error, or a line the seed agent does not write: kept, as the user's
            if kind == "model_error":
                calls += 1
            shown = entry if isinstance(entry, str) else json.dumps(entry, default=str)
            messages.append({"role": "user", "content": f"[{kind or 'line'}] {shown}"})
    return {
        "info": {
            "exit_status": stopped or status,
            "submission": submission,
            "model_stats": {"instance_cost": cost_usd, "api_calls": calls},
        },
        "messages": messages,
        "trajectory_format": "mini-swe-agent-1.1",
    }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else json.dumps(value)


def _arguments(value: Any) -> str:
    """Tool arguments as OpenAI sends them: a JSON string."""
    return value if isinstance(value, str) else json.dumps(value, default=str)
