"""`dgm solve`: an archived agent on your own repository and task."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.text import Text

from archive.errors import InvalidArgument
from benchmarks.agent_run import AgentLimits
from dgm.cli.common import (
    DEFAULT_ARCHIVE,
    AgentModelOption,
    AgentTimeoutOption,
    ArchiveOption,
    JsonOption,
    MaxStepsOption,
    open_archive,
    print_json,
    short,
    shown,
    warnings,
    write_untrusted,
)
from sandbox.base import Backend, SandboxSettings


def register(app: typer.Typer) -> None:
    app.command()(solve)


def solve(
    node: Annotated[str, typer.Argument(help="The agent to run: a node id or prefix, or best.")],
    repo: Annotated[Path, typer.Option(help="Your git repository (its committed files).")],
    task: Annotated[
        Path | None, typer.Option(help="A file saying what to do (e.g. an issue's text).")
    ] = None,
    issue: Annotated[str | None, typer.Option(help="What to do, as text.")] = None,
    model: AgentModelOption = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Apply the patch to the work tree (kept clean).")
    ] = False,
    max_steps: MaxStepsOption = AgentLimits().max_steps,
    timeout: AgentTimeoutOption = AgentLimits().timeout_s,
    max_usd: Annotated[
        float | None, typer.Option(min=0, help="Stop the agent's model calls past this spend.")
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            help="Docker image with your project's tools and python3 (default: dgm's agent image)."
        ),
    ] = None,
    memory: Annotated[int, typer.Option(min=64, help="Sandbox memory in MB.")] = 2048,
    backend: Annotated[Backend, typer.Option(help="Sandbox backend.")] = Backend.AUTO,
    archive: ArchiveOption = DEFAULT_ARCHIVE,
    as_json: JsonOption = False,
) -> None:
    """Run an archived agent on your repository and task, in a sandbox with no network,
    its model reached through the FM gateway (keys from the environment, else the local
    model). Shows each step as it happens, prints the agent's patch on stdout and keeps
    its trajectory and cost in the archive; --apply applies the patch (refusing a work tree
    with uncommitted changes)."""
    from dgm import solve as solving
    from dgm.fm import local
    from dgm.fm.errors import FMError
    from dgm.fm.providers import open_providers
    from dgm.gateway import Budget
    from sandbox.factory import open_sandbox

    if (task is None) == (issue is None):
        raise InvalidArgument("give the task as --task FILE or as --issue TEXT (one of them)")
    if task is not None and not task.is_file():
        raise InvalidArgument(f"no task file {task}")
    statement = task.read_text(errors="replace") if task is not None else str(issue)
    if not statement.strip():
        raise InvalidArgument("the task is empty; say what the agent should do")
    solving.head_of(repo)
    if apply and (dirty := solving.changed_files(repo)):
        raise InvalidArgument(
            f"{repo} has uncommitted changes ({dirty[0]}, ...); commit or stash them, "
            "or run without --apply"
        )
    title = statement.strip().splitlines()[0][:200]
    with open_archive(archive) as arc, open_providers() as providers:
        node_id = _agent(arc, node)
        chosen = model or (local.MODEL_NAME if providers.local else None)
        if chosen is None:
            raise FMError("name the agent's model with --model")

        def show(call, step: int, spent, asked: str) -> None:
            line = Text(
                f"step {step:>3}  {call.model}  {call.input_tokens + call.output_tokens:,} "
                f"tokens  ${call.cost_usd or 0:.4f}  {call.latency_s:.1f} s  {call.status}"
                f"   (so far {spent.tokens:,} tokens, ${spent.usd:.4f})"
            )
            if asked:  # the model's words: never read as markup
                line.append(f"\n      -> {shown(asked)}", style="cyan")
            warnings.print(line, soft_wrap=True)

        warnings.print(f"agent {short(node_id)} on {escape(str(repo))} ({escape(chosen)}): "
                       f"{escape(title)}", soft_wrap=True)  # fmt: skip
        with warnings.status("the agent is working", spinner="dots"):
            solved = solving.solve(
                arc, node_id, repo, statement, model=chosen, providers=providers,
                new_sandbox=lambda s: open_sandbox(backend, s, unit_id=f"solve-{node_id[:8]}"),
                settings=SandboxSettings(memory_mb=memory, image=image, timeout_s=timeout),
                limits=AgentLimits(max_steps=max_steps, timeout_s=timeout),
                budget=Budget(usd=max_usd), show=show,
            )  # fmt: skip
        applied, refused = False, None
        if apply and solved.patch.strip():
            try:
                solving.apply(repo, solved)
                applied = True
            except InvalidArgument as error:  # the solve is kept all the same
                refused = error
        kept = solving.keep(arc, node_id, repo, title, chosen, solved, applied=applied)
    summary = {
        "solve": kept,
        "node": node_id,
        "head": solved.head,
        "stop": solved.stop,
        "steps": solved.steps,
        "tokens": solved.spent.tokens,
        "cost_usd": solved.spent.usd,
        "duration_s": round(solved.duration_s, 1),
        "applied": applied,
        "refused": list(solved.refused),
        "patch": solved.patch,
    }
    if as_json:
        print_json(summary)
    else:
        write_untrusted(solved.patch)
    for why in solved.refused:
        warnings.print(f"refused from the agent's output: {escape(why)}")
    what = "applied to the work tree" if applied else "not applied"
    if not solved.patch.strip():
        what = "the agent made no change"
    warnings.print(
        f"{solved.steps} steps, {solved.spent.tokens:,} tokens, ${solved.spent.usd:.4f}, "
        f"{solved.duration_s:.0f} s; the agent stopped: {solved.stop}; {what}. Kept as "
        f"solve {kept}: dgm show {short(node_id)} --solve {kept}",
        soft_wrap=True,
    )
    if refused:
        raise refused


def _agent(arc, node: str) -> str:
    if node != "best":
        return arc.resolve(node)
    from dgm.cli.archive_commands import best_of_run

    return best_of_run(arc, None, "solve").node
