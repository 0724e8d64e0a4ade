"""`dgm simulate`: selectors compared on synthetic landscapes, with no FM and no Docker."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from dgm.cli.common import JsonOption, console, print_json, warnings

LANDSCAPES = ["mismatch", "aligned", "independent"]


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)


def simulate(
    selector: Annotated[
        list[str] | None,
        typer.Option(help="Selector to run (repeatable; default: every one dgm has)."),
    ] = None,
    landscape: Annotated[
        list[str] | None,
        typer.Option(help=f"Landscape kind (repeatable; default: {', '.join(LANDSCAPES)})."),
    ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Runs per selector and landscape.")] = 20,
    evaluations: Annotated[int, typer.Option(min=1, help="Evaluation budget of each run.")] = 600,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="A simulation setting: landscape.noise=0.1, params.alpha=0.5, stages=[20] ...",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run selectors against synthetic landscapes (hidden pass rates and productivity,
    Bernoulli evaluations) and compare the true pass rate of each run's answer."""
    from dgm.config import ConfigError, set_values, validated
    from dgm.search import NAMES
    from dgm.simulate import Simulation, interval
    from dgm.simulate import simulate as run_one

    selectors, kinds = selector or NAMES, landscape or LANDSCAPES
    for kind in kinds:
        if kind not in LANDSCAPES:
            raise ConfigError(f"no landscape {kind!r}; choose one of {', '.join(LANDSCAPES)}")
    plans = []
    for kind in kinds:
        for name in selectors:
            data = {"selector": name, "evaluations": evaluations, "landscape": {"kind": kind}}
            set_values(data, set_ or [])
            plans.append(validated(Simulation, data))
    rows = []
    with Progress(console=warnings, transient=True) as progress:
        task = progress.add_task("simulating", total=len(plans) * seeds)
        for plan in plans:
            start = time.perf_counter()
            results = []
            for seed in range(seeds):
                results.append(run_one(plan, seed))
                progress.advance(task)
            rows.append(
                {
                    "landscape": plan.landscape.kind,
                    "selector": plan.selector,
                    "params": plan.params,
                    "seeds": seeds,
                    "evaluations": plan.evaluations,
                    "answer": interval([r.answer for r in results]),
                    "found": interval([r.found for r in results]),
                    "score_vs_clade_best": interval([r.correlation for r in results]),
                    "nodes": sum(r.nodes for r in results) / seeds,
                    "held": sum(r.held for r in results) / seeds,
                    "gate_breaches": sum(r.gate_breaches for r in results),
                    "seconds_per_run": (time.perf_counter() - start) / seeds,
                }
            )
    if as_json:
        print_json(rows)
        return
    table = Table(
        title=f"true pass rate of the answer after {evaluations} evaluations "
        f"(mean [95% interval] over {seeds} seeds)"
    )
    for column in ("landscape", "selector", "answer", "best found", "r(score, clade best)"):
        table.add_column(column)
    table.add_column("nodes", justify="right")
    reviewed = any(row["held"] for row in rows)  # children held for a person: landscape.flagged
    if reviewed:
        table.add_column("held", justify="right")
        table.add_column("gate breaches", justify="right")
    table.add_column("s/run", justify="right")
    for row in rows:
        held = [f"{row['held']:.1f}", str(row["gate_breaches"])] if reviewed else []
        table.add_row(
            row["landscape"], _named(row["selector"], row["params"]),
            _interval(row["answer"]), _interval(row["found"]),
            f"{row['score_vs_clade_best'][0]:.2f}", f"{row['nodes']:.0f}", *held,
            f"{row['seconds_per_run']:.2f}",
        )  # fmt: skip
    console.print(table)


def _named(selector: str, params: dict) -> str:
    return selector + (f" ({', '.join(f'{k}={v}' for k, v in params.items())})" if params else "")


def _interval(values: tuple[float, float, float]) -> str:
    mean, low, high = values
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"
