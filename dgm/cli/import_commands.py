"""`dgm import dgm-run`: a DGM or HGM run's output folder into the archive."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import Progress

from archive.errors import InvalidArgument
from archive.records import NodeStatus
from dgm.cli.common import (
    DEFAULT_ARCHIVE,
    ArchiveOption,
    JsonOption,
    console,
    open_archive,
    print_json,
    short,
)

app = typer.Typer(help="Bring runs made by other tools into the archive.", no_args_is_help=True)


@app.command("dgm-run")
def dgm_run(
    output: Annotated[
        Path, typer.Argument(help="The run's output folder (holding dgm_metadata.jsonl).")
    ],
    seed: Annotated[
        Path,
        typer.Option(
            help="The agent the run started from (for a Polyglot run of DGM's code: its "
            "folder with coding_agent_polyglot.py as coding_agent.py, as DGM runs it)."
        ),
    ],
    name: Annotated[
        str | None, typer.Option(help="The run's name here (default: dgm-<folder name>).")
    ] = None,
    benchmark: Annotated[
        str | None,
        typer.Option(help="Benchmark the results are on (default: polyglot or swebench, by id)."),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            help="The agent's model in that run (its output does not say), kept with each result."
        ),
    ] = "unknown",
    archive: ArchiveOption = DEFAULT_ARCHIVE,
    as_json: JsonOption = False,
) -> None:
    """Import a DGM or HGM run: each agent is its parent's code plus its patch, each task
    result an evaluation, each diagnosis and failed attempt kept. Nothing is written unless
    the whole folder imports."""
    from dgm.run_import import built, read_run, write_run

    with open_archive(archive) as arc:
        run = read_run(output, benchmark)
        name = name or f"{run.system}-{output.resolve().name}"
        if any(r.name == name for r in arc.runs()):
            raise InvalidArgument(f"the archive has a run named {name!r}; give another --name")
        with built(run, seed), Progress(console=console, transient=True, disable=as_json) as bar:
            job = bar.add_task(f"importing {name}", total=len(run.nodes) + len(run.failed))
            ids = write_run(arc, run, name, model, lambda: bar.advance(job))
        results = sum(len(arc.evaluations(node_id)) for node_id in ids.values())
    kept = sum(node.status is NodeStatus.ADMITTED for node in run.nodes)
    summary = {
        "run": name,
        "from": run.system,
        "benchmark": run.benchmark,
        "nodes": ids,
        "admitted": kept,
        "rejected": len(run.nodes) - kept,
        "failed_attempts": len(run.failed),
        "evaluations": results,
    }
    if as_json:
        print_json(summary)
        return
    console.print(
        f"Imported {run.system.upper()} run {escape(str(output))} as run {escape(name)}: "
        f"{len(ids)} agents ({kept} admitted, {len(run.nodes) - kept} rejected), "
        f"{len(run.failed)} failed attempts, {results} task results on {run.benchmark}."
    )
    seed_id = short(ids["initial"])
    console.print(f"Try: dgm tree {seed_id}   dgm status --name {escape(name)}   dgm ui")
    console.print(
        "The imported agents have not been through dgm's safety review: "
        "`dgm review check NODE` reviews one (the export gate waits for it)."
    )
