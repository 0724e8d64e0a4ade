"""SWE-bench predictions: a node's patches as the JSON lines that
`swebench.harness.run_evaluation` and sb-cli read (`instance_id`, `model_name_or_path`,
`model_patch`), so a result can be checked, or submitted, with the field's own harness."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from archive import Archive
from archive.errors import InvalidArgument
from archive.records import Evaluation


def model_name(node_id: str) -> str:
    return f"dgm-{node_id}"


def node_predictions(
    archive: Archive, node_id: str, benchmark: str, *, run_id: str | None = None
) -> list[dict[str, str]]:
    """One prediction per task the node attempted on the benchmark (of one run, if given):
    its latest counted attempt's patch (an empty patch is a prediction too; a harness error
    is none)."""
    attempts = [
        e
        for e in archive.evaluations(node_id)
        if e.benchmark == benchmark and e.status.counted and (run_id is None or e.run_id == run_id)
    ]
    if not attempts:
        where = " in that run" if run_id else ""
        raise InvalidArgument(f"node {node_id[:8]} has no counted result on {benchmark}{where}")
    return rows(archive, node_id, attempts)


def rows(archive: Archive, node_id: str, attempts: Iterable[Evaluation]) -> list[dict[str, str]]:
    """The predictions of these attempts, the latest per task, in task order."""
    latest = {e.task: e for e in sorted(attempts, key=lambda e: e.id)}
    return [
        {
            "instance_id": task,
            "model_name_or_path": model_name(node_id),
            "model_patch": archive.blobs.get(e.patch_blob).decode(errors="replace")
            if e.patch_blob
            else "",
        }
        for task, e in sorted(latest.items())
    ]


def write_predictions(predictions: list[dict[str, str]], path: Path) -> None:
    """Write the JSONL whole or not at all (a file beside it, renamed over it)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w") as out:
            out.writelines(json.dumps(p) + "\n" for p in predictions)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
