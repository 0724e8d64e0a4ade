"""Handing items from worker threads to one reader."""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    """Items put by any thread, taken all at once by one reader: none is lost between (as an
    append to a list the reader swapped out could be)."""

    def __init__(self) -> None:
        self._items: deque[T] = deque()

    def put(self, item: T) -> None:
        self._items.append(item)

    def take(self) -> list[T]:
        taken = []
        while self._items:
            taken.append(self._items.popleft())
        return taken
