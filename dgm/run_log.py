"""What a run tells as it goes: each event into the archive (what `dgm status` reads) and, as
a JSON line, into the run's log file under `<archive>/runs/`."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from archive import Archive
from archive.events import EventKind


class RunLog:
    def __init__(self, archive: Archive, run_id: str, name: str):
        self.archive, self.run_id = archive, run_id
        folder = archive.root / "runs"
        folder.mkdir(exist_ok=True)
        self.path = folder / f"{name}-{run_id[:8]}.jsonl"
        self._file = self.path.open("a")

    def record(self, kind: EventKind, node: str | None = None, **details: Any) -> None:
        """An event in the archive and its line in the log."""
        self.archive.append_event(kind, details, run_id=self.run_id, node_id=node)
        self.line(kind, node, **details)

    def line(self, kind: EventKind, node: str | None = None, **details: Any) -> None:
        """A line in the log only (the archive wrote the event itself)."""
        line = {"time": datetime.now(UTC).isoformat(), "event": str(kind), "run": self.run_id}
        line |= {"node": node} if node else {}
        self._file.write(json.dumps(line | details, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # a full disk may refuse the last line
            self._file.close()
