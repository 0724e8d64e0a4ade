"""`dgm bench list` and `dgm bench verify`: the benchmarks, and whether they grade correctly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from archive.records import EvalStatus
from benchmarks.agent_run import AgentLimits
from dgm.cli.common import (
    DEFAULT_ARCHIVE,
    AgentModelOption,
    AgentTimeoutOption,
    ArchiveOption,
    JsonOption,
    MaxStepsOption,
    console,
    open_archive,
    print_json,
    warnings,
)
from sandbox.base import Backend

app = typer.Typer(help="The benchmarks agents are measured on.", no_args_is_help=True)

PathOption = Annotated[
    str | None,
    typer.Option("--path", help="Polyglot checkout, or SWE-bench dataset file or name."),
]
PullOption = Annotated[
    bool, typer.Option(help="Pull missing SWE-bench instance images from their registry.")
]


def open_benchmark(
    name: str, path: str | None, language: str | None, backend: Backend, *, pull: bool = False
):
    from benchmarks.registry import open_benchmark as open_named

    bench = open_named(
        name, path, backend=backend, language=language, pull=pull, status=warnings.status
    )
    for lang, reason in getattr(bench, "unavailable", {}).items():
        warnings.print(f"[yellow]warning:[/yellow] {lang} is unavailable: {reason}")
    return bench


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """The benchmarks dgm knows."""
    from benchmarks.polyglot import BUILTIN as BUILTIN_ROOT
    from benchmarks.polyglot import PolyglotBenchmark
    from benchmarks.registry import NAMES
    from benchmarks.swebench import SWEBenchBenchmark
    from benchmarks.swebench_suite import SUITE, rows

    builtin = {
        "builtin-polyglot": PolyglotBenchmark(lambda settings: None, BUILTIN_ROOT),
        "builtin-swebench": SWEBenchBenchmark(
            rows(), lambda settings: None, subsets=SUITE / "subsets"
        ),
    }
    rows = [
        {
            "name": name,
            "tasks": len(builtin[name].tasks()) if name in builtin else None,
            "subsets": (
                {k: len(v) for k, v in builtin[name].subsets().items()} if name in builtin else {}
            ),
            "about": about,
        }
        for name, about in NAMES.items()
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("benchmark", "tasks", "subsets", "about", box=None)
    for row in rows:
        subsets = ", ".join(f"{k} ({n})" for k, n in row["subsets"].items()) or "-"
        table.add_row(row["name"], str(row["tasks"] or "-"), subsets, row["about"])
    console.print(table)


@app.command()
def verify(
    benchmark: Annotated[str, typer.Option(help="Benchmark name (see `dgm bench list`).")],
    path: PathOption = None,
    language: Annotated[str | None, typer.Option(help="Only this language (polyglot).")] = None,
    pull: PullOption = False,
    backend: Annotated[Backend, typer.Option(help="Sandbox backend.")] = Backend.AUTO,
    as_json: JsonOption = False,
) -> None:
    """Grade every task's reference solution (must resolve, and the solution check must not
    flag it) and its untouched starting code (must not resolve): check an installation
    before spending money on it."""
    bench = open_benchmark(benchmark, path, language, backend, pull=pull)
    tasks = bench.tasks()
    rows = []
    with Progress(console=console, transient=True, disable=as_json) as progress:
        job = progress.add_task(f"verifying {benchmark}", total=len(tasks))
        for task in tasks:
            unchecked = bench.reference_unavailable(task)
            rows.append(_verify_task(bench, task, bench.starts_passing(task), unchecked))
            progress.advance(job)
    unavailable = getattr(bench, "unavailable", {})
    summary = _by_language(bench, rows, unavailable) if hasattr(bench, "exercises") else []
    if as_json:
        print_json({"tasks": rows, "languages": summary, "unavailable": unavailable})
    else:
        _print_verified(rows, summary, unavailable)
    if not all(row["ok"] for row in rows):
        raise typer.Exit(1)


def _verify_task(bench, task: str, refactoring: bool, unchecked: str | None) -> dict:
    """The reference must resolve (unless it cannot run here: `unchecked` says why) and the
    starting code must not (unless the exercise asks to refactor working code)."""
    reference, flagged = None, []
    if unchecked is None:
        graded = bench.grade(task, bench.reference_patch(task))
        reference, flagged = graded.status, [str(f) for f in graded.findings]
    baseline = bench.grade(task, "").status
    stub_ok = baseline is not EvalStatus.RESOLVED or refactoring
    ok = (unchecked is not None or reference is EvalStatus.RESOLVED) and stub_ok
    return {"task": task, "reference": reference, "baseline": baseline, "ok": ok,
            "flagged": flagged, "reference_unavailable": unchecked}  # fmt: skip


def _starts_passing(row: dict) -> bool:
    return row["ok"] and row["baseline"] is EvalStatus.RESOLVED


def _by_language(bench, rows: list[dict], unavailable: dict[str, str]) -> list[dict]:
    """Per Polyglot language: its exercises, and how each grade came out."""
    summary = []
    for lang in sorted(
        {key.partition("/")[0] for key in [*(r["task"] for r in rows), *unavailable]}
    ):
        mine = [row for row in rows if row["task"].startswith(f"{lang}/")]
        summary.append({
            "language": lang,
            "exercises": len(bench.exercises(lang)),
            "reference_resolves": sum(r["reference"] is EvalStatus.RESOLVED for r in mine),
            "stub_does_not": sum(r["baseline"] is not EvalStatus.RESOLVED for r in mine),
            "starts_passing": sum(_starts_passing(r) for r in mine),
            "unavailable": len(bench.exercises(lang)) if lang in unavailable else sum(
                key.startswith(f"{lang}/") for key in unavailable
            ),
            "reference_unavailable": sum(bool(r["reference_unavailable"]) for r in mine),
            "wrong": sum(not r["ok"] for r in mine),
        })  # fmt: skip
    return summary


def _print_verified(rows: list[dict], summary: list[dict], unavailable: dict[str, str]) -> None:
    table = Table("task", "reference", "baseline", "", box=None)
    for row in rows:
        mark = "ok" if row["ok"] else "[red]WRONG[/red]"
        mark += ", starts passing" if _starts_passing(row) else ""  # a refactoring exercise
        mark += ", reference unavailable" if row["reference_unavailable"] else ""
        reference = row["reference"].value if row["reference"] else "-"
        table.add_row(row["task"], reference, row["baseline"].value, mark)
    console.print(table)
    for row in rows:
        for finding in row["flagged"]:
            console.print(f"{row['task']}: the solution check flags the reference: {finding}")
    if summary:
        columns = ["language", "exercises", "reference resolves", "stub does not",
                   "starts passing", "unavailable", "reference unavailable", "wrong"]  # fmt: skip
        cells = [[str(value) for value in line.values()] for line in summary]
        # as narrow as the longest word or value: the names wrap, and 80 columns hold it all
        by_language = Table(box=None, pad_edge=False, collapse_padding=True)
        for i, column in enumerate(columns):
            width = max([*map(len, column.split()), *(len(line[i]) for line in cells)])
            by_language.add_column(column, width=width)
        for line in cells:
            by_language.add_row(*line)
        console.print(by_language)
    for name, reason in unavailable.items():
        console.print(f"{name} is unavailable: {reason}")
    for row in rows:
        if row["reference_unavailable"]:
            console.print(
                f"{row['task']}: its reference is unavailable: {row['reference_unavailable']}"
            )
    bad = sum(not row["ok"] for row in rows)
    console.print(f"{len(rows) - bad} of {len(rows)} tasks grade as they should")


@app.command("run")
def run_(
    node: Annotated[str, typer.Argument(help="The node whose agent runs (id or prefix).")],
    benchmark: Annotated[str, typer.Option(help="Benchmark name (see `dgm bench list`).")],
    path: PathOption = None,
    subset: Annotated[
        str | None, typer.Option(help="A named subset of the tasks, or a file of task ids.")
    ] = None,
    tasks: Annotated[
        str | None, typer.Option(help="Comma-separated task ids, or @FILE with one per line.")
    ] = None,
    model: AgentModelOption = None,
    workers: Annotated[int, typer.Option(min=1, help="Tasks run at once.")] = 1,
    max_steps: MaxStepsOption = AgentLimits().max_steps,
    timeout: AgentTimeoutOption = AgentLimits().timeout_s,
    again: Annotated[bool, typer.Option(help="Run tasks already evaluated again.")] = False,
    pull: PullOption = False,
    backend: Annotated[Backend, typer.Option(help="Sandbox backend.")] = Backend.AUTO,
    predictions: Annotated[
        Path | None,
        typer.Option(help="Also write the patches as SWE-bench predictions (JSONL) here."),
    ] = None,
    archive: ArchiveOption = DEFAULT_ARCHIVE,
    as_json: JsonOption = False,
) -> None:
    """Run a node's agent on a benchmark's tasks; results go into the archive."""
    from concurrent.futures import ThreadPoolExecutor

    from benchmarks.base import BenchmarkError
    from benchmarks.registry import subset_tasks
    from dgm.evaluate import evaluate
    from dgm.fm import local
    from dgm.fm.providers import open_providers
    from dgm.gateway import Gateway, GatewaySettings
    from sandbox.factory import open_sandbox

    bench = open_benchmark(benchmark, path, None, backend, pull=pull)
    if subset and tasks:
        raise BenchmarkError("give --subset or --tasks, not both")
    if subset:
        chosen = subset_tasks(bench, subset)
    else:
        chosen = _task_list(tasks) if tasks else bench.tasks()
    # an unknown id is recorded as an error (a harness failure, not counted); the rest runs
    for task in sorted(set(chosen) - set(bench.tasks())):
        warnings.print(f"[yellow]warning:[/yellow] {benchmark} has no task {task!r}")
    with open_archive(archive) as arc, open_providers() as providers:
        node_id = arc.resolve(node)
        chosen_model = model or (local.MODEL_NAME if providers.local else None)
        if chosen_model is None:
            raise BenchmarkError("name the agent's model with --model")
        settings = GatewaySettings(
            openai=providers.openai, anthropic=providers.anthropic, models=[chosen_model]
        )
        with Gateway(settings, arc) as gateway, ThreadPoolExecutor(workers) as pool:

            def one(task: str):
                return evaluate(
                    node_id, bench, task, archive=arc, gateway=gateway,
                    new_sandbox=lambda s: open_sandbox(backend, s, unit_id=task),
                    model=chosen_model, again=again,
                    limits=AgentLimits(max_steps=max_steps, timeout_s=timeout),
                )  # fmt: skip

            results = []
            with Progress(console=console, transient=True, disable=as_json) as progress:
                job = progress.add_task(f"{benchmark} on {node_id[:8]}", total=len(chosen))
                for result in pool.map(one, chosen):
                    results.append(result)
                    progress.advance(job)
        if predictions is not None:  # what was counted: a harness error predicts nothing
            from dgm.predictions import rows as prediction_rows
            from dgm.predictions import write_predictions

            counted = [r for r in results if r.status.counted]
            write_predictions(prediction_rows(arc, node_id, counted), predictions)
        rows = [
            {
                "task": r.task,
                "status": r.status,
                "attempt": r.attempt,
                "cost_usd": r.cost_usd,
                "reason": _first_line(arc, r.log_blob) if r.status is EvalStatus.ERROR else None,
            }
            for r in results
        ]
    if as_json:
        print_json(rows)
        return
    table = Table("task", "status", "attempt", "cost", "", box=None)
    for row in rows:
        table.add_row(
            row["task"], row["status"].value, str(row["attempt"]),
            f"${row['cost_usd'] or 0:.4f}", row["reason"] or "",
        )  # fmt: skip
    console.print(table)
    solved = sum(r.status is EvalStatus.RESOLVED for r in results)
    console.print(f"{solved} of {len(results)} tasks resolved")


def _first_line(archive, blob: str | None) -> str:
    text = archive.blobs.get(blob).decode(errors="replace").strip() if blob else ""
    return text.splitlines()[0] if text else ""


def _task_list(spec: str) -> list[str]:
    if spec.startswith("@"):
        from benchmarks.base import BenchmarkError, read_ids

        if not Path(spec[1:]).is_file():
            raise BenchmarkError(f"no task file {spec[1:]}")
        return read_ids(Path(spec[1:]))
    return [t.strip() for t in spec.split(",") if t.strip()]
