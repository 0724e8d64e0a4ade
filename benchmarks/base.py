"""The benchmark seam: tasks an agent works on, and grading that the agent cannot touch."""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from archive.records import EvalStatus


class BenchmarkError(Exception):
    """A benchmark cannot be used as given; the message says what to fix."""


@dataclass(frozen=True)
class Outcome:
    status: EvalStatus
    log: str
    duration_s: float


def outcome(status: EvalStatus, log: list[str], start: float) -> Outcome:
    """An outcome whose duration runs from `start` (a `time.monotonic()` reading) to now."""
    return Outcome(status, "\n".join(log), time.monotonic() - start)


class Benchmark(Protocol):
    name: str

    def tasks(self) -> list[str]:
        """Every task id, sorted."""

    def subsets(self) -> dict[str, list[str]]:
        """Named subsets of the tasks, such as the stages of a staged evaluation."""

    def statement(self, task: str) -> str:
        """What the agent is asked to do."""

    def workspace(self, task: str, target: Path) -> None:
        """Write the repository the agent starts from (no hidden tests) into `target`."""

    def image(self, task: str) -> str | None:
        """The Docker image the agent works in (made ready first); None: the base image."""

    def reference_patch(self, task: str) -> str:
        """A patch known to solve the task (to check that grading works)."""

    def grade(self, task: str, patch: str) -> Outcome:
        """Apply `patch` to a pristine copy of the task in a fresh sandbox and run the
        hidden tests; edits the patch makes to test files are dropped first. Never raises
        for a task of this benchmark: what goes wrong is an `error` outcome with its log."""


def read_ids(path: Path) -> list[str]:
    """Task ids from a file, one per line; `#` starts a comment."""
    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text().splitlines())
    return [line for line in lines if line]


def read_subsets(folder: Path, tasks: list[str], keep: Callable[[str], bool]) -> dict:
    """`<folder>/<name>.txt` files of task ids (those `keep` accepts), checked against `tasks`."""
    found = {}
    for path in sorted(Path(folder).glob("*.txt")):
        ids = [task for task in read_ids(path) if keep(task)]
        if unknown := sorted(set(ids) - set(tasks)):
            raise BenchmarkError(f"subset {path} names unknown task {unknown[0]!r}")
        found[path.stem] = ids
    return found


def file_diff(name: str, old: str | None, new: str) -> str:
    """A git-style patch turning `old` into `new` (`old` None: a new file)."""
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True),
        new.splitlines(keepends=True),
        "/dev/null" if old is None else f"a/{name}",
        f"b/{name}",
    )
    body = "".join(lines)
    if not body:
        return ""
    mode = "new file mode 100644\n" if old is None else ""
    return f"diff --git a/{name} b/{name}\n{mode}{body}"


def patch_paths(patch: str) -> list[str]:
    """The files a git-style patch touches."""
    return [
        line.split(" ", 3)[2].removeprefix("a/")
        for line in patch.splitlines()
        if line.startswith("diff --git ")
    ]


def drop_sections(patch: str, hidden: Callable[[str], bool]) -> tuple[str, list[str]]:
    """The patch minus its sections for files `hidden` accepts, and those files' paths."""
    kept, dropped = [], []
    for section in patch.split("diff --git ")[1:] if "diff --git " in patch else []:
        path = section.split(" ", 1)[0].removeprefix("a/")
        if hidden(path):
            dropped.append(path)
        else:
            kept.append("diff --git " + section)
    return "".join(kept), dropped
