"""Export a node: its files, a git bundle whose history is its lineage, and its provenance."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from archive.archive import Archive
from archive.errors import ExportTargetNotEmpty
from archive.events import EventKind
from archive.records import Run, jsonable

AGENT_DIR = "agent"
BUNDLE = "agent.bundle"
PROVENANCE = "provenance.json"


def export_node(
    archive: Archive,
    node_id: str,
    out: Path,
    *,
    chosen: dict[str, Any] | None = None,
    gates: dict[str, Any] | None = None,
) -> Path:
    """Write `out/agent/`, `out/agent.bundle` and `out/provenance.json`, all or nothing.
    `chosen`: how the node was chosen (a run's answer and its rule); `gates`: what the
    safety policy's gates said of it; both for the provenance, beside its reviews and
    decisions."""
    out = Path(out)
    if out.is_symlink():  # renaming onto it would replace the link, or fail half-way
        raise ExportTargetNotEmpty(f"{out} is a symbolic link; export into a new or empty folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportTargetNotEmpty(f"{out} is not empty; export into a new or empty folder")
    node = archive.node(node_id)
    provenance = _provenance(archive, node_id) | {"chosen": chosen, "gates": gates}
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        archive.git.checkout(node.commit, scratch / AGENT_DIR)
        archive.git.bundle(node.commit, scratch / BUNDLE)
        (scratch / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n")
        if out.exists():
            out.rmdir()
        scratch.rename(out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return out


def _provenance(archive: Archive, node_id: str) -> dict[str, Any]:
    path = archive.lineage().path_to_root(node_id)[::-1]  # root first
    by_id = {n.id: n for n in archive.nodes(path)}
    models = archive.models_used(path)
    runs = {rid: archive.run(rid) for rid in {by_id[n].run_id for n in path} - {None}}
    node = by_id[node_id]
    run = runs.get(node.run_id)

    def ancestor(nid: str) -> dict[str, Any]:
        n = by_id[nid]
        r = runs.get(n.run_id)
        return {
            "id": n.id,
            "commit": n.commit,
            "tree": n.tree,
            "origin": n.origin.value,
            "status": n.status.value,
            "summary": n.summary,
            "created_at": n.created_at.isoformat(),
            "run": r.id if r else None,
            "config_hash": r.config_hash if r else None,
            "models": models[nid],
            "score": jsonable(archive.scores(nid).searched),
            "held_out": jsonable(archive.scores(nid).held_out),
        }

    results = [
        {k: v for k, v in jsonable(e).items() if k not in {"id", "node_id"}}
        for e in archive.evaluations(node_id)
    ]
    return {
        "dgm_version": _dgm_version(),
        "exported_at": datetime.now(UTC).isoformat(),
        "node": jsonable(node),
        "scores": jsonable(archive.scores(node_id)),
        "results": results,
        "models": models[node_id],
        "run": _run(archive, run) if run else None,
        "config_hash": run.config_hash if run else None,
        "reviews": [jsonable(r) for r in archive.reviews(node_id)],
        "lineage": [ancestor(nid) for nid in path],
    }


def _run(archive: Archive, run: Run) -> dict[str, Any]:
    """The run that made the node: its resolved config, the config's hash, and what its
    models cost as its last session metered them."""
    started = archive.last_event(run.id, EventKind.RUN_STARTED, EventKind.RUN_RESUMED)
    prices = started.payload.get("prices") if started else None
    return {
        "id": run.id, "name": run.name, "config_hash": run.config_hash, "config": run.config,
        "prices": prices,
    }  # fmt: skip


def _dgm_version() -> str:
    try:
        return version("dgm")
    except PackageNotFoundError:
        return "unknown"
