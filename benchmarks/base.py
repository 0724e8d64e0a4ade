"""The benchmark seam: tasks an agent works on, and grading that the agent cannot touch."""

from __future__ import annotations

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

    def grade(self, task: str, patch: str) -> Outcome:
        """Apply `patch` to a pristine copy of the task in a fresh sandbox and run the
        hidden tests; edits the patch makes to test files are dropped first."""
