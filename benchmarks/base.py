"""The benchmark seam: tasks an agent works on, and grading that the agent cannot touch."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from archive.records import EvalStatus
from benchmarks.solution_check import Finding


class BenchmarkError(Exception):
    """A benchmark cannot be used as given; the message says what to fix."""


@dataclass(frozen=True)
class Outcome:
    status: EvalStatus
    log: str
    duration_s: float
    findings: tuple[Finding, ...] = ()
    """What the solution check flagged (the result is then unresolved), for the safety review."""


def outcome(
    status: EvalStatus, log: list[str], start: float, findings: Sequence[Finding] = ()
) -> Outcome:
    """An outcome whose duration runs from `start` (a `time.monotonic()` reading) to now."""
    return Outcome(status, "\n".join(log), time.monotonic() - start, tuple(findings))


Family = Literal["swe-bench", "polyglot"]


class Benchmark(Protocol):
    name: str
    family: Family
    """Which of DGM's task families it is: DGM chooses what a parent should improve, and
    how its failures are diagnosed, differently for each."""

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

    def hidden_tests(self, task: str) -> str:
        """The tests that judge the task, which the agent never sees (for the diagnosis of
        its failures, as DGM shows them)."""

    def reference_patch(self, task: str) -> str:
        """A patch known to solve the task (to check that grading works)."""

    def reference_unavailable(self, task: str) -> str | None:
        """Why the reference patch cannot be graded here (what it needs is missing), or None."""

    def starts_passing(self, task: str) -> bool:
        """May the untouched starting code pass (a task that asks to refactor working code)?"""

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
