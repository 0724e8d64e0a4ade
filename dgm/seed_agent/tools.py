"""The agent's two tools: a bash shell that keeps its state, and a file editor with undo."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import time
import uuid
from pathlib import Path

MAX_OUTPUT = 10_000  # characters of one tool result the model gets to see


def clip(text: str) -> str:
    if len(text) <= MAX_OUTPUT:
        return text
    half = MAX_OUTPUT // 2
    return f"{text[:half]}\n[... {len(text) - MAX_OUTPUT} characters cut ...]\n{text[-half:]}"


class Bash:
    """One bash process for the whole task: `cd`, variables and functions persist."""

    def __init__(self, cwd: str, timeout_s: float = 180.0):
        self.cwd, self.timeout_s = cwd, timeout_s
        self._start()

    def _start(self) -> None:
        self._proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=self.cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def run(self, command: str) -> str:
        marker = f"__done_{uuid.uuid4().hex}__"
        script = f"{command}\n__status=$?; echo; echo {marker}$__status\n"
        self._proc.stdin.write(script.encode())
        self._proc.stdin.flush()
        output, deadline = b"", time.monotonic() + self.timeout_s
        fd = self._proc.stdout.fileno()
        while marker.encode() not in output:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.close()
                self._start()
                return clip(output.decode(errors="replace")) + (
                    f"\n[timed out after {self.timeout_s:.0f} s; the shell was restarted]"
                )
            chunk = os.read(fd, 65536)
            if not chunk:
                self._start()
                return clip(output.decode(errors="replace")) + "\n[the shell exited; restarted]"
            output += chunk
        text, _, status = output.decode(errors="replace").rpartition(marker)
        text, status = text.rstrip("\n"), status.strip()
        return clip(text) + ("" if status == "0" else f"\n[exit code {status}]")

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, 9)
        self._proc.wait()


class Editor:
    """view, create, str_replace, insert and undo_edit on files under the repository."""

    def __init__(self, root: str):
        self.root = Path(root).resolve()
        self._history: dict[Path, list[str | None]] = {}

    def run(self, command: str, path: str, **args: object) -> str:
        target = (self.root / path).resolve()
        action = getattr(self, f"_{command}", None)
        if action is None or command.startswith("_"):
            return "error: command must be view, create, str_replace, insert or undo_edit"
        try:
            return action(target, **args)
        except TypeError as error:
            return f"error: bad arguments for {command}: {error}"
        except OSError as error:
            return f"error: {error}"

    def _view(self, path: Path, view_range: list[int] | None = None) -> str:
        if path.is_dir():
            entries = sorted(
                str(p.relative_to(path)) + ("/" if p.is_dir() else "")
                for p in path.rglob("*")
                if ".git" not in p.parts and len(p.relative_to(path).parts) <= 2
            )
            return clip("\n".join(entries))
        lines = path.read_text(errors="replace").splitlines()
        first, last = view_range or (1, len(lines))
        last = len(lines) if last == -1 else last
        numbered = (
            f"{n:6}\t{lines[n - 1]}" for n in range(max(first, 1), min(last, len(lines)) + 1)
        )
        return clip("\n".join(numbered))

    def _create(self, path: Path, file_text: str) -> str:
        self._remember(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(file_text)
        return f"created {path}"

    def _str_replace(self, path: Path, old_str: str, new_str: str = "") -> str:
        text = path.read_text()
        count = text.count(old_str)
        if count != 1:
            return f"error: old_str occurs {count} times in {path}; it must occur exactly once"
        self._remember(path)
        path.write_text(text.replace(old_str, new_str))
        return f"edited {path}"

    def _insert(self, path: Path, insert_line: int, new_str: str) -> str:
        lines = path.read_text().splitlines(keepends=True)
        if not 0 <= insert_line <= len(lines):
            return f"error: insert_line must be between 0 and {len(lines)}"
        self._remember(path)
        new = new_str if new_str.endswith("\n") else new_str + "\n"
        path.write_text("".join(lines[:insert_line]) + new + "".join(lines[insert_line:]))
        return f"inserted after line {insert_line} of {path}"

    def _undo_edit(self, path: Path) -> str:
        if not self._history.get(path):
            return f"error: no edit of {path} to undo"
        previous = self._history[path].pop()
        if previous is None:
            path.unlink()
        else:
            path.write_text(previous)
        return f"undid the last edit of {path}"

    def _remember(self, path: Path) -> None:
        self._history.setdefault(path, []).append(path.read_text() if path.exists() else None)
