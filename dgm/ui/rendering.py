"""What the pages show of an agent's work: a diff per file, highlighted by Pygments, and a
trajectory as a conversation. Everything here came out of a sandbox: it is parsed
defensively, cut to size and escaped (Pygments and the templates escape; nothing is marked
safe that an agent wrote, except Pygments' own output)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer

from benchmarks.patches import PatchError, parse

FILE_CHARS = 200_000  # of one file's diff shown
TEXT_CHARS = 20_000  # of one message or tool output shown
TURNS = 400  # of a trajectory shown
_FORMATTER = HtmlFormatter(nowrap=True, classprefix="hl-")


def highlight_css() -> str:
    return _FORMATTER.get_style_defs(".diff")


@dataclass(frozen=True)
class FileDiff:
    path: str
    added: int
    removed: int
    html: str
    """Pygments' highlighted markup of the file's diff."""
    cut: bool


def file_diffs(diff: str) -> list[FileDiff]:
    """A diff split by file (git's reading), each highlighted."""
    try:
        files = [(" -> ".join(f.paths), len(f.added), len(f.removed), f.text) for f in parse(diff)]
    except PatchError:  # shown whole rather than not at all
        files = [("(the whole diff)", diff.count("\n+"), diff.count("\n-"), diff)] if diff else []
    return [
        FileDiff(
            path,
            added,
            removed,
            highlight(text[:FILE_CHARS], DiffLexer(), _FORMATTER),
            len(text) > FILE_CHARS,
        )
        for path, added, removed, text in files
    ]


@dataclass
class Turn:
    kind: str
    """`assistant`, `tool`, or `event` (anything else the agent logged)."""
    text: str = ""
    calls: list[dict[str, str]] = field(default_factory=list)
    name: str = ""
    ok: bool = True
    step: int | None = None


def conversation(trajectory: bytes | None) -> tuple[list[Turn], int]:
    """The trajectory's turns (at most TURNS) and how many lines were left out."""
    turns: list[Turn] = []
    lines = (trajectory or b"").decode(errors="replace").splitlines()
    for line in lines[:TURNS]:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            turns.append(Turn("event", _cut(line)))
            continue
        turns.append(_turn(entry))
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
