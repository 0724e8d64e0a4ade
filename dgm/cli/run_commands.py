"""`dgm run` (start or continue a run) and `dgm status` (how the latest run is going)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from archive.records import interval_text
from dgm.cli.common import DEFAULT_ARCHIVE, ArchiveOption, JsonOption, console, print_json


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("status")(status)


def run(
    config: Annotated[Path | None, typer.Argument(help="The run's YAML file.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a setting: dotted.key=value (repeatable)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run of this name (re-running does too).")
    ] = False,
    archive: Annotated[
        Path | None,
        typer.Option(
            "--archive",
            envvar="DGM_ARCHIVE",
            help="Archive folder (default: $DGM_ARCHIVE, else the config's `archive`).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Grow the archive until a budget is spent or nothing is left to do.

    Running the same configuration again continues the run.
    """
    from dgm.config import load_config
    from dgm.engine import Engine

    settings = load_config(config, set_ or [])
    if archive is not None:
        settings = settings.model_copy(update={"archive": archive})
    with Live(Text("starting"), console=console, transient=True, refresh_per_second=2) as live:
        outcome = Engine(settings, on_change=lambda e: live.update(live_view(e))).run(resume=resume)
    best = (
        f"{outcome.best[:8]} {outcome.best_score[0]}/{outcome.best_score[1]}"
        if outcome.best
        else "none"
    )
    console.print(f"run {outcome.name} ({outcome.run_id[:8]}) stopped: {outcome.reason}")
    console.print(f"{outcome.units_done} units this time; best node {best}")
    console.print(f"(the best node is {outcome.answer_rule})", style="dim")
    if outcome.held_out is not None:
        console.print(f"held-out tasks: {outcome.held_out[0]}/{outcome.held_out[1]} resolved")
    if outcome.awaiting:
        console.print(
            f"{outcome.awaiting} nodes wait for a person: `dgm review list`, then approve or "
            "reject; the run takes decisions up while it runs, or when it runs again"
        )


def live_view(engine) -> Group:
    """What the run is doing, and a bar of its most spent budget."""
    lines = engine.budget_lines()
    used = {name: line.share for name, line in lines.items() if line.share is not None}
    if engine.held_out_progress:
        done, of = engine.held_out_progress
        text = f"measuring the answer on held-out tasks: {done}/{of}"
    else:
        best, (resolved, attempted) = engine.best()
        machines = Counter(engine.placed.get(str(unit)) for unit in engine.in_flight)
        placed = sorted((m, n) for m, n in machines.items() if m)
        where = " (" + ", ".join(f"{n} on {m}" for m, n in placed) + ")" if placed else ""
        score = f"{resolved}/{attempted} ({interval_text((resolved, attempted))})"
        text = (
            f"{engine.units_done} units done, {len(engine.in_flight)} in flight{where}, "
            f"best {score if best else '-'}"
        )
    if engine.awaiting:
        text += f", {engine.awaiting} waiting for a person"
    budget = engine.config.budget
    text += f", spent ${lines['usd'].spent:.4f}" + (f" of ${budget.usd:g}" if budget.usd else "")
    if not used:
        return Group(Text(text))
    name, share = max(used.items(), key=lambda item: item[1])
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=1.0, completed=min(share, 1.0), width=40), f"{share:.0%} of budget {name}"
    )
    return Group(Text(text), bar)


def show_config(found: dict) -> None:
    import yaml

    console.print(f"run {found['name']}: config {found['config_hash']}", highlight=False)
    console.print(yaml.safe_dump(found["config"], sort_keys=False).rstrip(), highlight=False)
    if prices := found["prices"]:
        console.print("prices, USD per million tokens (in / out):")
        for model, price in prices.items():
            cost = f"{price[0]:g} / {price[1]:g}" if price else "unknown (not metered in USD)"
            console.print(f"  {model}: {cost}", highlight=False)
    hashes = [s["config_hash"] for s in found["sessions"]]
    if len(set(hashes)) > 1:  # continued with other settings
        console.print("sessions:")
        for session in found["sessions"]:
            at = session["at"].strftime("%Y-%m-%d %H:%M:%S")
            console.print(f"  {at} {session['kind']}: config {session['config_hash']}")


def status(
    archive: ArchiveOption = DEFAULT_ARCHIVE,
    name: Annotated[str | None, typer.Option(help="The run (default: the latest).")] = None,
    config: Annotated[
        bool, typer.Option("--config", help="The run's resolved config, its hash and prices.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """How a run is going: state, units done and in flight, best node, spend, reviews."""
    from dgm.cli.common import open_archive
    from dgm.run_status import find_run, run_config, run_status

    with open_archive(archive) as arc:
        found = run_config(arc, find_run(arc, name)) if config else run_status(arc, name)
    if as_json:
        print_json(found)
        return
    if config:
        show_config(found)
        return
    console.print(
        f"run {found['name']} ({found['id'][:8]}): {found['state']}"
        + (f", {found['reason']}" if found["reason"] else "")
    )
    if held := found["held_by"]:
        console.print(
            f"held by {held['host']} (pid {held['pid']}), heard from {held['silent_s']:.0f} s ago"
        )
    elif found["state"] == "running":
        console.print("no scheduler holds it (killed?): run its config again to continue")
    console.print(f"units done {found['units_done']}, in flight {found['in_flight']}")
    for unit in found["units"]:
        where = f" on {unit['machine']}" if unit["machine"] else ""
        console.print(f"  {unit['unit']}{where}, {unit['seconds']:.0f} s")
    best, chosen = found["best"], found["selector"]
    by = chosen["name"] + "".join(f" {k}={v}" for k, v in chosen["params"].items())
    console.print(
        f"best node {best['id'][:8]} {best['resolved']}/{best['attempted']} "
        f"({interval_text((best['resolved'], best['attempted']))}) on the searched "
        f"tasks (by {by}: {found['answer_rule']})"
        if best
        else f"best node: none yet (selector {by})"
    )
    if held_out := found["held_out"]:
        console.print(
            f"held-out answer {held_out['id'][:8]} {held_out['resolved']}/{held_out['attempted']} "
            f"({interval_text((held_out['resolved'], held_out['attempted']))})"
            " on tasks the search never saw"
        )
    spend = found["spend"]
    console.print(f"spent ${spend['usd']:.4f} and {spend['tokens']} tokens")
    for name_, line in found["budget"].items():
        if line["limit"] is not None:
            console.print(
                f"  budget {name_}: {_amount(name_, line['spent'])} of "
                f"{_amount(name_, line['limit'])}"
            )
    console.print(f"nodes awaiting review: {found['awaiting_review']}")


def _amount(name: str, value: float) -> str:
    if name == "usd":
        return f"${value:.4f}"
    if name == "wall_clock":
        return f"{value / 3600:.2f} h"
    return str(int(value))
