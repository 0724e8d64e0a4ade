"""What the search and the one who runs it say to each other: units of work asked for, what
each brought back when told, and the decisions the search takes on members."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np


@dataclass(frozen=True)
class Unit:
    """`expand` a node into a child, or `evaluate` a node on one task."""

    kind: Literal["expand", "evaluate"]
    node: str
    task: str | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.node[:8]}" + (f" {self.task}" if self.task else "")


@dataclass(frozen=True)
class Evaluated:
    """What an evaluation found."""

    resolved: bool | None
    """None: a harness error (the task is done, but the result counts for nothing)."""
    patched: bool = True
    """The agent left a non-empty patch (DGM keeps only children that did, somewhere)."""


@dataclass(frozen=True)
class Expanded:
    """What an expansion made."""

    child: str | None
    """None: no child (no usable diff, a failed diagnosis)."""
    usable: bool = False
    """The child passed its own tests: it may be evaluated."""
    interesting: bool | None = None
    """The interestingness judge's verdict, where a policy asked for one."""
    code: np.ndarray | None = None
    """An embedding of the child's code, where a policy asked for one."""
    held: frozenset[str] = frozenset()
    """Gates (`admit`, `promote`) at which the safety review holds the child for a person."""


Outcome = Evaluated | Expanded


@dataclass(frozen=True)
class Decision:
    """A member whose staged evaluation is complete: admitted to the archive, turned away, or
    (None) held for a person's decision by the safety policy."""

    node: str
    admitted: bool | None
    reason: str


class Policy(Protocol):
    """A search, as whoever runs it sees it."""

    name: str
    needs: frozenset[str]
    """What `tell` must bring beyond results: `code` (`Expanded.code`), `verdicts`
    (`Expanded.interesting`)."""

    def ask(self) -> Unit | None:
        """The unit to start now; None: nothing until a unit in flight is told about."""

    def tell(self, unit: Unit, outcome: Outcome | None) -> list[Decision]:
        """What a unit brought back (None: it failed); the members decided because of it."""

    def release(self, node: str, approved: bool) -> list[Decision]:
        """A person's decision on a member held at a gate (or on any member: a rejection
        ends it); the decisions that follow."""

    def answer(self) -> str | None:
        """The node the run reports (None: nothing scored yet)."""
