"""Import of a DGM or HGM run's output folder, so a search run with their code can be browsed,
compared and exported here.

The layout, as their released code writes it (jennyzzt/dgm `DGM_outer.py`,
`self_improve_step.py`; metauto-ai/HGM `hgm.py`, `hgm_utils.py`):

- `dgm_metadata.jsonl`: one JSON object per generation, each written with `indent=2`
  (`generation`, `selfimprove_entries`, `children`, `children_compiled`, `archive`); HGM's
  `hgm_metadata.jsonl` holds its tree instead (`nodes`: `commit_id`, `id`, `parent_id`).
- `<node>/metadata.json`: `run_id`, `parent_commit` (`initial` for the first agent), `entry`,
  `problem_statement`, `overall_performance` (`total_resolved_ids`, `total_unresolved_ids`,
  `total_emptypatch_ids`; an id once per evaluation), maybe `improvement_diagnosis`;
  `<node>/model_patch.diff`, the node's own change; `<node>/self_evo.md`, the conversation
  that made it; `<node>/predictions/<run>_<i>/<task>.json` and `<task>.md`, each task's
  prediction and the agent's conversation on it.
- `initial/`: the initial agent's evaluation in the same form.

A node's code is its parent's plus its patch, applied here as an expansion's is (nothing
outside the agent's folder). Everything is read, and every tree built, before the archive is
touched: a folder that does not fit imports nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from archive import Archive
from archive.errors import InvalidArgument
from archive.events import EventKind
from archive.records import EvalStatus, EvaluationResult, NodeStatus, Origin
from benchmarks import patches
from benchmarks.base import read_ids
from benchmarks.registry import PUBLISHED
from dgm.expand import apply_change
from sandbox.outputs import read_regular

SEED = "initial"
# a node's or a task's name: it becomes part of a path here
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
POLYGLOT_TASK = re.compile(r"^(cpp|go|java|javascript|python|rust)__(.+)$")
# DGM's staged evaluation (10, 50, then 140 more SWE-bench tasks): each task's results are
# recorded under the stage whose published list holds it, as a run's are
STAGE_LISTS = ("dgm-small", "dgm-medium", "dgm-big")
HARNESS_ERROR = (
    b"DGM's harness gave no result for this prediction: DGM's score counts it as a failure, "
    b"dgm does not count a harness error.\n"
)
SELECTORS = {"dgm": "score_child_prop", "hgm": "cmp"}  # their parent rules, as dgm names them
OUTCOMES = {
    "total_resolved_ids": EvalStatus.RESOLVED,
    "total_unresolved_ids": EvalStatus.UNRESOLVED,
    "total_emptypatch_ids": EvalStatus.EMPTY,
}


@dataclass
class Imported:
    """One agent of the run (or one attempt that made none: `patch` empty)."""

    name: str
    """DGM's run id of the self-improve step (`initial` for the first agent)."""
    parent: str | None
    metadata: dict[str, Any]
    patch: str = ""
    status: NodeStatus = NodeStatus.ADMITTED
    reason: str = ""
    code: Path | None = None
    outcomes: list[tuple[str, EvalStatus]] = field(default_factory=list)
    """(DGM's task id, status) of each of its task results, read once by `read_run`."""


@dataclass
class ImportedRun:
    system: Literal["dgm", "hgm"]
    folder: Path
    benchmark: str
    nodes: list[Imported]
    """The agents, parents first (the initial one first)."""
    failed: list[Imported] = field(default_factory=list)
    """Attempts that made no agent (no patch, or no problem statement)."""


def read_run(folder: Path, benchmark: str | None = None) -> ImportedRun:
    """The run in a DGM or HGM output folder; InvalidArgument says what does not fit."""
    folder = Path(folder)
    if (folder / "dgm_metadata.jsonl").is_file():
        system, nodes, failed = "dgm", *_dgm_nodes(folder)
    elif (folder / "hgm_metadata.jsonl").is_file():
        system, nodes, failed = "hgm", *_hgm_nodes(folder)
    else:
        raise InvalidArgument(
            f"{folder} is not a DGM or HGM output folder: it has no dgm_metadata.jsonl "
            "or hgm_metadata.jsonl"
        )
    seed = Imported(SEED, None, _metadata(folder, SEED))
    for node in (seed, *nodes):
        node.outcomes = list(_outcomes(folder / node.name, node.metadata))
    tasks = [task for node in (seed, *nodes) for task, _ in node.outcomes]
    return ImportedRun(system, folder, benchmark or _benchmark(tasks), [seed, *nodes], failed)


def _dgm_nodes(folder: Path) -> tuple[list[Imported], list[Imported]]:
    generations = _json_objects(folder / "dgm_metadata.jsonl")
    kept = set(generations[-1].get("archive", [])) if generations else set()
    compiled = {c for g in generations for c in g.get("children_compiled", [])}
    nodes, failed, known = [], [], {SEED}
    for name in dict.fromkeys(c for g in generations for c in g.get("children", [])):
        node = _child(folder, name)
        if node.parent not in known:
            raise InvalidArgument(f"{name}'s parent {node.parent} is not an agent of the run")
        if not node.patch.strip() or not node.metadata.get("problem_statement"):
            failed.append(node)
            continue
        if name not in compiled:
            node.status = NodeStatus.REJECTED
            node.reason = (
                "DGM did not count it as compiled (no evaluation, no non-empty patch, or fewer "
                "tasks evaluated than its first stage)"
            )
        elif name not in kept:
            node.status = NodeStatus.REJECTED
            node.reason = "DGM did not keep it in its archive"
        nodes.append(node)
        known.add(name)
    if missing := sorted(kept - known - {SEED}):
        raise InvalidArgument(f"DGM's archive names {missing[0]}, which no generation made")
    return nodes, failed


def _hgm_nodes(folder: Path) -> tuple[list[Imported], list[Imported]]:
    entries = _json_objects(folder / "hgm_metadata.jsonl")
    tree = sorted(entries[-1].get("nodes", []), key=lambda n: n["id"]) if entries else []
    names = {0: SEED} | {n["id"]: n["commit_id"] for n in tree}
    nodes, failed, known = [], [], {SEED}
    for entry in tree:
        parent = names.get(entry.get("parent_id"), SEED)
        if parent not in known:
            raise InvalidArgument(
                f"{entry['commit_id']}'s parent {parent} is not an agent of the run"
            )
        if entry["commit_id"] == "failed":  # HGM's name for a child it could not make
            failed.append(Imported("failed", parent, {}))
            continue
        node = _child(folder, entry["commit_id"], parent)
        if not node.patch.strip():
            failed.append(node)
            continue
        nodes.append(node)
        known.add(node.name)
    return nodes, failed


def _child(folder: Path, name: str, parent: str | None = None) -> Imported:
    """A child of the run; its parent, unless given, as its metadata names it."""
    metadata, patch = _metadata(folder, name), read_regular(folder / name / "model_patch.diff")
    return Imported(
        name, parent or str(metadata.get("parent_commit") or SEED), metadata,
        patch.decode(errors="replace") if patch else "",
    )  # fmt: skip


def build_trees(run: ImportedRun, seed: Path, scratch: Path) -> None:
    """Each agent's code under `scratch`: the seed's, then each child's parent's with its
    patch. InvalidArgument names the first patch that does not apply."""
    if not seed.is_dir():
        raise InvalidArgument(f"{seed} is not a folder; give the agent the run started from")
    codes: dict[str, Path] = {}
    for number, node in enumerate(run.nodes):
        code = scratch / str(number)
        if node.parent is None:
            shutil.copytree(seed, code, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        else:
            shutil.copytree(codes[node.parent], code, symlinks=True)
            try:
                apply_change(node.patch, code)
            except patches.PatchError as error:
                raise InvalidArgument(
                    f"{node.name}'s model_patch.diff does not apply to its parent's code "
                    f"({error}); is {seed} the agent the run started from?"
                ) from error
        codes[node.name] = node.code = code


def write_run(
    archive: Archive, run: ImportedRun, name: str, model: str,
    progress: Callable[[], None] = lambda: None,
) -> dict[str, str]:  # fmt: skip
    """Put the run's agents, results (with the agent's `model`) and failed attempts into the
    archive as run `name` (trees already built); the node id of each agent, by DGM's name.
    The run searched every task it has a result on, with the selector of the tool."""
    config = {
        "imported": {"from": run.system, "folder": str(run.folder.resolve())},
        "selector": {"name": SELECTORS[run.system], "params": {}},
    }
    searched = sorted({_task(task) for node in run.nodes for task, _ in node.outcomes})
    stage_of = _stages(run.benchmark)
    created = archive.create_run(name, config, {
        "benchmark": run.benchmark, "model": model, "searched": searched, "held_out": [],
    })  # fmt: skip
    ids: dict[str, str] = {}
    for node in run.nodes:
        assert node.code is not None, "build_trees first"
        seed = node.parent is None
        added = archive.add_node(
            node.code,
            parent=None if seed else ids[node.parent],
            origin=Origin.SEED if seed else Origin.SELF_MODIFICATION,
            status=node.status,
            proposal=_proposal(node, run.system),
            run_id=created.id,
            meta=_meta(archive, node, run),
        )
        ids[node.name] = added.id
        results = _results(run, node, model, stage_of)
        archive.record_evaluations(added.id, results, run_id=created.id)
        if node.reason:
            archive.set_status(added.id, node.status, node.reason)
        progress()
    for attempt in run.failed:
        payload = {
            "entry": str(attempt.metadata.get("entry") or ""),
            "reason": "it made no patch" if not attempt.patch.strip() else "no problem statement",
            "diagnosis": {},  # DGM keeps only the problem statement made from it
            "problem_statement": str(attempt.metadata.get("problem_statement") or ""),
            "imported": {"from": run.system, "name": attempt.name},
        }
        if attempt.patch:
            payload["patch_blob"] = archive.blobs.put(attempt.patch.encode())
        archive.append_event(
            EventKind.EXPANSION_FAILED, payload, run_id=created.id, node_id=ids[attempt.parent]
        )
        progress()
    archive.finish_run(created.id, "finished", f"imported from {run.system.upper()} output")
    return ids


@contextmanager
def built(run: ImportedRun, seed: Path) -> Iterator[None]:
    """The run's trees, built in a scratch folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="dgm-import-") as scratch:
        build_trees(run, Path(seed), Path(scratch))
        yield


def _results(
    run: ImportedRun, node: Imported, model: str, stage_of: dict[str, str]
) -> list[EvaluationResult]:
    folder = run.folder / node.name
    tries = Counter(task for task, _ in node.outcomes)
    found = []
    for task, status in node.outcomes:
        # which evaluation a result came from is not written down: a task tried more than
        # once keeps its statuses but no patch or conversation, which could be another's
        files = _prediction(folder, task) if tries[task] == 1 else {}
        if status is EvalStatus.ERROR:
            files["log"] = HARNESS_ERROR + (files.get("harness_log") or b"")
        files.pop("harness_log", None)
        found.append(
            EvaluationResult(
                run.benchmark, _task(task), status, stage=stage_of.get(_task(task), "full"),
                model=model, **files,
            )
        )  # fmt: skip
    return found


def _outcomes(folder: Path, metadata: dict[str, Any]) -> Iterator[tuple[str, EvalStatus]]:
    """(task id, status) of each task result of a node: those its lists name, then an
    `error` for each prediction submitted (HGM's `total_submitted_ids`, or a prediction
    file) that no list names, which DGM's score counts as a failure."""
    performance = metadata.get("overall_performance") or {}
    listed: Counter[str] = Counter()
    for key, status in OUTCOMES.items():
        for task in performance.get(key) or []:
            _check_name(task, "task")
            listed[task] += 1
            yield task, status
    predicted = Counter(
        path.stem for path in (folder / "predictions").glob("*/*.json") if NAME.match(path.stem)
    )
    submitted = Counter(performance.get("total_submitted_ids") or []) | predicted
    for task, count in sorted(submitted.items()):
        _check_name(task, "task")
        for _ in range(count - listed[task]):
            yield task, EvalStatus.ERROR


def _prediction(folder: Path, task: str) -> dict[str, bytes | None]:
    """The patch, conversation, test log and harness log of a task's evaluation, where the
    node's folder has them (`predictions/<run>_<i>/`, `logs/run_evaluation/<run>_<i>/`)."""
    runs = sorted(p for p in (folder / "predictions").glob("*") if (p / f"{task}.json").is_file())
    if not runs:
        return {}
    where = runs[0]
    try:
        patch = json.loads(read_regular(where / f"{task}.json") or b"{}").get("model_patch") or ""
    except (ValueError, AttributeError):
        patch = ""
    logs = sorted(
        (folder / "logs" / "run_evaluation" / where.name).glob(f"*/{task}/test_output.txt")
    )
    return {
        "patch": str(patch).encode(),
        "trajectory": read_regular(where / f"{task}.md"),
        "log": read_regular(where / f"{task}_eval.md") or (read_regular(logs[0]) if logs else None),
        "harness_log": read_regular(where / f"{task}_docker.log"),
    }


def _meta(archive: Archive, node: Imported, run: ImportedRun) -> dict[str, Any]:
    meta: dict[str, Any] = {"imported": {"from": run.system, "name": node.name}}
    if node.parent is None:
        return meta
    data = node.metadata
    meta |= {
        "entry": data.get("entry"),
        "problem_statement": data.get("problem_statement"),
        "reason": node.reason,
        "patch_blob": archive.blobs.put(node.patch.encode()),
    }
    if data.get("improvement_diagnosis"):
        meta["improvement_diagnosis"] = data["improvement_diagnosis"]
    if conversation := read_regular(run.folder / node.name / "self_evo.md"):
        meta["trajectory_blob"] = archive.blobs.put(conversation)
    return meta


def _proposal(node: Imported, system: str) -> str:
    if node.parent is None:
        return f"The initial agent of a {system.upper()} run"
    statement = str(node.metadata.get("problem_statement") or "")
    # DGM's statement: a summary of the agent, then "# To Implement" and the suggestion
    asked = statement.partition("# To Implement")[2] or statement
    title = next((line.strip() for line in asked.splitlines() if line.strip()), "")
    return f"# {title[:100] or 'Improve the agent'}\n\n{statement}"


def _stages(benchmark: str) -> dict[str, str]:
    kind = "polyglot" if "polyglot" in benchmark else "swebench"
    stage_of: dict[str, str] = {}
    for number, name in reversed(list(enumerate(STAGE_LISTS, 1))):
        path = PUBLISHED / kind / f"{name}.txt"
        if path.is_file():
            stage_of |= dict.fromkeys(read_ids(path), f"stage-{number}")
    return stage_of


def _benchmark(tasks: list[str]) -> str:
    polyglot = bool(tasks) and all(POLYGLOT_TASK.match(task) for task in tasks)
    return "polyglot" if polyglot else "swebench"


def _task(task: str) -> str:
    """dgm's id of a task: Polyglot's `cpp__leap` is `cpp/leap`."""
    return "/".join(match.groups()) if (match := POLYGLOT_TASK.match(task)) else task


def _check_name(name: object, what: str) -> None:
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidArgument(f"{name!r} is not a {what} name DGM or HGM would write")


def _metadata(folder: Path, name: str) -> dict[str, Any]:
    _check_name(name, "node")
    path = folder / name / "metadata.json"
    data = read_regular(path)
    if data is None:
        raise InvalidArgument(f"{path} is missing (or not a regular file)")
    try:
        metadata = json.loads(data)
    except ValueError as error:
        raise InvalidArgument(f"{path} is not JSON: {error}") from error
    if not isinstance(metadata, dict):
        raise InvalidArgument(f"{path} is not a JSON object")
    return metadata


def _json_objects(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a file that holds them one after another (DGM writes each with
    `indent=2`, so a "line" spans many)."""
    text, decoder, found, pos = (
        (read_regular(path) or b"").decode(errors="replace"),
        json.JSONDecoder(),
        [],
        0,
    )
    while (pos := _skip_space(text, pos)) < len(text):
        try:
            value, pos = decoder.raw_decode(text, pos)
        except ValueError as error:
            raise InvalidArgument(f"{path} is not a sequence of JSON objects: {error}") from error
        if not isinstance(value, dict):
            raise InvalidArgument(f"{path} holds a {type(value).__name__}, not an object")
        found.append(value)
    return found


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos
