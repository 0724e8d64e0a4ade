"""Options and output helpers shared by every command."""

from __future__ import annotations

import json
import os
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
