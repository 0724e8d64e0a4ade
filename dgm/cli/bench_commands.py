"""`dgm bench list` and `dgm bench verify`: the benchmarks, and whether they grade correctly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from archive.records import EvalStatus
from dgm.cli.common import JsonOption, console, print_json
from sandbox.base import Backend

app = typer.Typer(help="The benchmarks agents are measured on.", no_args_is_help=True)

BUILTIN = "builtin-polyglot"
NAMES = {
    BUILTIN: "built-in Python exercises in Polyglot's format (offline)",
    "polyglot": "a checkout of Aider's polyglot-benchmark (--path)",
}


def open_benchmark(name: str, path: Path | None, language: str | None, backend: Backend):
    from benchmarks.base import BenchmarkError
    from benchmarks.polyglot import BUILTIN as BUILTIN_ROOT
    from benchmarks.polyglot import TEST_COMMANDS, PolyglotBenchmark
    from sandbox.factory import open_sandbox

    if name not in NAMES:
        raise BenchmarkError(f"no benchmark {name!r}; `dgm bench list` shows them")
    if name == "polyglot" and path is None:
        raise BenchmarkError("the polyglot benchmark needs --path (a polyglot-benchmark checkout)")
    languages = tuple(TEST_COMMANDS)
    if language is not None:
        if language not in TEST_COMMANDS:
            raise BenchmarkError(
                f"{language} is unavailable: its toolchain is not in the sandbox image "
                f"(available: {', '.join(TEST_COMMANDS)})"
            )
        languages = (language,)
    return PolyglotBenchmark(
        lambda settings: open_sandbox(backend, settings),
        path or BUILTIN_ROOT,
        languages=languages,
        name=name,
    )


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """The benchmarks dgm knows."""
    from benchmarks.polyglot import BUILTIN as BUILTIN_ROOT
    from benchmarks.polyglot import PolyglotBenchmark

    builtin = len(PolyglotBenchmark(lambda settings: None, BUILTIN_ROOT).tasks())
    rows = [
        {"name": name, "tasks": builtin if name == BUILTIN else None, "about": about}
        for name, about in NAMES.items()
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("benchmark", "tasks", "about", box=None)
    for row in rows:
        table.add_row(row["name"], str(row["tasks"] or "-"), row["about"])
    console.print(table)


@app.command()
def verify(
    benchmark: Annotated[str, typer.Option(help="Benchmark name (see `dgm bench list`).")],
    path: Annotated[Path | None, typer.Option(help="Where the benchmark's files are.")] = None,
    language: Annotated[str | None, typer.Option(help="Only this language.")] = None,
    backend: Annotated[Backend, typer.Option(help="Sandbox backend.")] = Backend.AUTO,
    as_json: JsonOption = False,
) -> None:
    """Grade every task's reference solution (must resolve) and its untouched starting code
    (must not): check an installation before spending money on it."""
    bench = open_benchmark(benchmark, path, language, backend)
    tasks = bench.tasks()
    rows = []
    with Progress(console=console, transient=True, disable=as_json) as progress:
        job = progress.add_task(f"verifying {benchmark}", total=len(tasks))
        for task in tasks:
            reference = bench.grade(task, bench.reference_patch(task)).status
            baseline = bench.grade(task, "").status
            ok = reference is EvalStatus.RESOLVED and baseline is not EvalStatus.RESOLVED
            rows.append({"task": task, "reference": reference, "baseline": baseline, "ok": ok})
            progress.advance(job)
    if as_json:
        print_json(rows)
    else:
        table = Table("task", "reference", "baseline", "", box=None)
        for row in rows:
            mark = "ok" if row["ok"] else "[red]WRONG[/red]"
            table.add_row(row["task"], row["reference"].value, row["baseline"].value, mark)
        console.print(table)
        bad = sum(not row["ok"] for row in rows)
        console.print(f"{len(rows) - bad} of {len(rows)} tasks grade as they should")
    if not all(row["ok"] for row in rows):
        raise typer.Exit(1)
