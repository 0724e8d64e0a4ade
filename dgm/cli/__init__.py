"""The `dgm` command. Errors a user can cause end in one line on stderr and exit code 2."""

from __future__ import annotations

import sys

import typer

from archive import ArchiveError
from benchmarks.base import BenchmarkError
from dgm.cli import (
    archive_commands,
    bench_commands,
    import_commands,
    review_commands,
    run_commands,
    sandbox_commands,
    simulate_commands,
    solve_commands,
    ui_commands,
)
from dgm.config import ConfigError
from dgm.fm.errors import FMError
from sandbox.base import SandboxError

app = typer.Typer(
    name="dgm",
    help="An open-ended archive of self-improving coding agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
archive_commands.register(app)
run_commands.register(app)
simulate_commands.register(app)
solve_commands.register(app)
ui_commands.register(app)
app.add_typer(sandbox_commands.app, name="sandbox")
app.add_typer(bench_commands.app, name="bench")
app.add_typer(review_commands.app, name="review")
app.add_typer(review_commands.audit_app, name="audit")
app.add_typer(import_commands.app, name="import")


def main() -> None:
    try:
        app()
    except (ArchiveError, SandboxError, FMError, BenchmarkError, ConfigError) as error:
        typer.echo(f"dgm: error: {error}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("dgm: interrupted", err=True)
        sys.exit(130)
