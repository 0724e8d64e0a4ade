"""`dgm sandbox doctor` and `dgm sandbox exec`: see what agents can and cannot do."""

from __future__ import annotations

import re
import sys
from typing import Annotated

import typer
from rich.table import Table

from dgm.cli.common import JsonOption, console, print_json
from sandbox.base import Backend, ExecStatus, SandboxError, SandboxSettings

app = typer.Typer(help="Inspect and try the sandboxes agents run in.", no_args_is_help=True)


def _megabytes(size: str) -> int:
    match = re.fullmatch(r"(\d+)([kmg]?)b?", size.strip().lower())
    if not match:
        raise SandboxError(f"{size!r} is not a size; write it like 512m or 2g")
    number, unit = int(match[1]), match[2] or "m"
    return max(1, {"k": number // 1024, "m": number, "g": number * 1024}[unit])


@app.command()
def doctor(as_json: JsonOption = False) -> None:
    """Is Docker reachable, which images exist, is gVisor there, what the limits are."""
    from sandbox import bwrap_sandbox
    from sandbox.docker_sandbox import connect
    from sandbox.images import ImageRecipe, recipe_tag

    settings = SandboxSettings()
    report: dict = {"docker": None, "image": recipe_tag(ImageRecipe()), "image_built": False}
    try:
        client = connect()
        info = client.info()
        report["docker"] = client.version()["Version"]
        report["image_built"] = bool(client.images.list(name=report["image"]))
        report["gvisor"] = "runsc" in info.get("Runtimes", {})
        report["cgroup"] = info.get("CgroupVersion")
    except SandboxError as error:
        report["docker_error"] = str(error)
    report["bwrap"] = bwrap_sandbox.available()
    if report["bwrap"]:
        try:
            report["bwrap_protections"] = bwrap_sandbox.protections()
        except SandboxError as error:
            report["bwrap_error"] = str(error)
    report["limits"] = settings.model_dump()
    if as_json:
        print_json(report)
        return
    table = Table("check", "result", show_header=False)
    table.add_row("docker", report["docker"] or f"[red]{report.get('docker_error')}[/]")
    built = "[green]built[/]" if report["image_built"] else "not built (first exec builds it)"
    table.add_row(f"image {report['image']}", built)
    table.add_row("gVisor (runsc)", "yes" if report.get("gvisor") else "no")
    table.add_row("bubblewrap", "installed" if report["bwrap"] else "not installed")
    if "bwrap_error" in report:
        table.add_row("bubblewrap sandbox", f"[red]{report['bwrap_error']}[/]")
    for key, value in report.get("bwrap_protections", {}).items():
        table.add_row(f"bubblewrap {key}", value)
    for key, value in report["limits"].items():
        table.add_row(f"limit {key}", str(value))
    console.print(table)
    if report["docker"] is None:
        raise typer.Exit(2)


@app.command("exec")
def exec_(
    command: Annotated[list[str], typer.Argument(help="The command, after `--`.")],
    backend: Annotated[
        Backend, typer.Option(help="Sandbox backend; auto: Docker if it answers, else bwrap.")
    ] = Backend.AUTO,
    timeout: Annotated[float, typer.Option(help="Seconds before the command is killed.")] = 60,
    memory: Annotated[str, typer.Option(help="Memory limit, e.g. 512m or 2g.")] = "1g",
    runtime: Annotated[
        str | None, typer.Option(help="Docker runtime, e.g. runsc for gVisor.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run a command in a fresh agent sandbox, exactly as an agent would be run."""
    from sandbox.factory import open_sandbox

    settings = SandboxSettings(memory_mb=_megabytes(memory), timeout_s=timeout, runtime=runtime)
    with console.status("preparing a sandbox (building the base image takes about a minute)"):
        sandbox = open_sandbox(backend, settings)
    try:
        result = sandbox.exec(command)
    finally:
        sandbox.close()
    if as_json:
        print_json(result)
        return
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.status is not ExecStatus.OK:
        typer.echo(f"dgm: sandbox: {result.status.value}", err=True)
        raise typer.Exit(1)
    raise typer.Exit(result.exit_code or 0)
