"""Options and output helpers shared by every command."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from archive import Archive, jsonable

ArchiveOption = Annotated[
    Path,
    typer.Option(
        "--archive",
        envvar="DGM_ARCHIVE",
        help="Archive folder (default: $DGM_ARCHIVE, else ./dgm-archive).",
        show_default=False,
    ),
]
DEFAULT_ARCHIVE = Path("dgm-archive")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
# how an agent runs: `dgm bench run` and `dgm solve`
AgentModelOption = Annotated[
    str | None, typer.Option("--model", help="Model the agent uses (default: the local model).")
]
MaxStepsOption = Annotated[
    int, typer.Option("--max-steps", min=1, help="Most agent steps per task.")
]
AgentTimeoutOption = Annotated[
    float, typer.Option("--timeout", min=1, help="Seconds the agent may take per task.")
]

console = Console(highlight=False)
warnings = Console(highlight=False, stderr=True)  # keeps --json output clean


def open_archive(path: Path) -> Archive:
    # DGM_BUSY_TIMEOUT: seconds to wait for another writer before giving up.
    timeout = float(os.environ.get("DGM_BUSY_TIMEOUT", "10"))
    return Archive.open(path, busy_timeout=timeout)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(value), indent=2) + "\n")


def short(node_id: str | None) -> str:
    return node_id[:8] if node_id else "-"


# control characters (newline and tab aside) move the cursor, erase lines, retitle the window
# or write the clipboard; bidirectional overrides reorder what a line seems to say
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def shown(text: str) -> str:
    """Text an agent or a model wrote, safe for a terminal: every control character and
    direction override written as its escape (`\\x1b`), so the person reading sees it."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def write_untrusted(data: str | bytes) -> None:
    """Write to stdout as is into a file or pipe; on a terminal, through `shown`."""
    if sys.stdout.isatty():
        text = data.decode(errors="replace") if isinstance(data, bytes) else data
        sys.stdout.write(shown(text))
    elif isinstance(data, bytes):
        sys.stdout.buffer.write(data)
    else:
        sys.stdout.write(data)
    sys.stdout.flush()
