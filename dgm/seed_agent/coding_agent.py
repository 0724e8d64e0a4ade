"""A small coding agent: give it a task and a repository; it edits the repository with a
model's help and leaves a patch.

    python3 coding_agent.py --task-file TASK.md --repo REPO --out OUT [--model M]

Writes OUT/patch.diff (every change to REPO, new files included) and OUT/trajectory.jsonl
(one JSON line per model call and per tool call), both kept current after every step: a run
cut short leaves what it had done. DGM_AGENT_TIMEOUT_S, when set, is the agent's own
wall-clock limit: it starts no step after it. The model is reached through the FM gateway:
OPENAI_BASE_URL / OPENAI_API_KEY, or ANTHROPIC_* for Claude models (DGM_API overrides).
Standard library only, so it runs in any image with python3 and git.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import llm
from tools import Bash, Editor

SYSTEM = """You are an expert software engineer working in the git repository at {repo}.
Solve the task by inspecting and changing files with the tools: `bash` runs shell commands
(the shell keeps its state between calls) and `editor` views and edits files. Make the
smallest change that solves the task, and run the tests when there are any. When the task is
done, answer with a one-paragraph summary and no tool call."""

TOOLS = [
    {
        "name": "bash",
        "description": "Run a shell command in the repository; the shell persists between calls.",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    },
    {
        "name": "editor",
        "description": (
            "View or edit a file (paths relative to the repository). Commands: view (optional "
            "view_range [first, last]), create (file_text), str_replace (old_str, new_str; "
            "old_str must occur once), insert (insert_line, new_str), undo_edit."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "command": {
                    "type": "string",
                    "enum": ["view", "create", "str_replace", "insert", "undo_edit"],
                },
                "path": {"type": "string"},
                "file_text": {"type": "string"},
                "old_str": {"type": "string"},
                "new_str": {"type": "string"},
                "insert_line": {"type": "integer"},
                "view_range": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["command", "path"],
        },
    },
]
MAX_FORMAT_FAILURES = 3  # consecutive malformed tool calls before the agent gives up
KEEP_RECENT = 6  # messages kept whole when the history must be trimmed


class Trajectory:
    def __init__(self, path: Path):
        self._file = path.open("w")

    def log(self, entry: str, **fields: object) -> None:
        self._file.write(json.dumps({"type": entry, "time": time.time(), **fields}) + "\n")
        self._file.flush()


def run(
    task: str, repo: str, out: Path, model: str, max_steps: int, time_limit_s: float | None = None
) -> str:
    """Work on the task; returns why the agent stopped (also the trajectory's last line).
    OUT/patch.diff holds the repository's changes after every step and at the end."""
    trajectory = Trajectory(out / "trajectory.jsonl")
    bash, editor = Bash(repo), Editor(repo)
    deadline = time.monotonic() + time_limit_s if time_limit_s else None

    def step_done() -> None:
        (out / "patch.diff").write_text(patch(repo))

    try:
        reason = work(task, repo, model, max_steps, trajectory, bash, editor, step_done, deadline)
    finally:
        bash.close()
    step_done()
    trajectory.log("stop", reason=reason)
    return reason


def work(
    task: str,
    repo: str,
    model: str,
    max_steps: int,
    trajectory: Trajectory,
    bash: Bash,
    editor: Editor,
    step_done: Callable[[], None] = lambda: None,
    deadline: float | None = None,
) -> str:
    """The loop: ask the model, run its tool calls, until one of the stop reasons."""
    messages = [
        {"role": "system", "content": SYSTEM.format(repo=repo)},
        {"role": "user", "content": task},
    ]
    failures = 0
    for step in range(max_steps):
        if deadline is not None and time.monotonic() >= deadline:
            return "time limit"
        try:
            reply = llm.chat(messages, TOOLS, model)
        except llm.LLMError as error:
            trajectory.log("model_error", step=step, kind=error.kind, error=str(error))
            if error.kind == "context_overflow" and trim(messages):
                continue
            return f"model error ({error.kind})"
        usage = reply.pop("usage")
        trajectory.log("model", step=step, message=reply, usage=usage)
        messages.append(reply)
        if not reply["tool_calls"]:
            return "done"
        malformed = 0
        for call in reply["tool_calls"]:
            result, ok = call_tool(call, bash, editor)
            malformed += not ok
            trajectory.log("tool", step=step, call=call["function"], result=result, ok=ok)
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        step_done()
        failures = failures + 1 if malformed == len(reply["tool_calls"]) else 0
        if failures >= MAX_FORMAT_FAILURES:
            return "format failures"
    return "step limit"


def call_tool(call: dict, bash: Bash, editor: Editor) -> tuple[str, bool]:
    """The tool's output, and whether the call was well-formed."""
    name = call["function"]["name"]
    try:
        arguments = json.loads(call["function"]["arguments"] or "{}")
        assert isinstance(arguments, dict)
    except (ValueError, AssertionError):
        return "error: the arguments are not a JSON object; call the tool again", False
    if name == "bash" and isinstance(arguments.get("command"), str):
        return bash.run(arguments["command"]), True
    if name == "editor" and {"command", "path"} <= arguments.keys():
        result = editor.run(**arguments)
        return result, not result.startswith("error: bad arguments")
    return f"error: no tool {name!r} takes these arguments; the tools are bash and editor", False


def trim(messages: list[dict]) -> bool:
    """Shorten old tool results so the conversation fits again; False if nothing is left."""
    old = messages[2:-KEEP_RECENT]
    long = [m for m in old if m["role"] == "tool" and len(m["content"]) > 200]
    for m in long:
        m["content"] = m["content"][:200] + "\n[trimmed to fit the context window]"
    if long:
        return True
    if len(messages) > 2 + KEEP_RECENT:  # drop the oldest exchange whole
        del messages[2]
        while len(messages) > 2 and messages[2]["role"] == "tool":
            del messages[2]
        return True
    return False


def patch(repo: str) -> str:
    """Every change to the repository since its last commit, new files included."""
    git = ["git", "-C", repo]
    subprocess.run([*git, "add", "-A"], check=True, capture_output=True)
    diff = subprocess.run([*git, "diff", "--cached", "--binary"], capture_output=True, text=True)
    subprocess.run([*git, "reset", "-q"], check=True, capture_output=True)
    return diff.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-file", type=Path, required=True)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default="gpt-4o")
    parser.add_argument("--max-steps", type=int, default=30)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    limit = float(os.environ.get("DGM_AGENT_TIMEOUT_S") or 0) or None
    reason = run(args.task_file.read_text(), args.repo, args.out, args.model, args.max_steps, limit)
    print(f"stopped: {reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
