"""`dgm ui`: the web UI on this machine, over an archive."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from functools import partial
from typing import Annotated

import typer

from dgm.cli.common import DEFAULT_ARCHIVE, ArchiveOption, console, open_archive


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)


def ui(
    archive: ArchiveOption = DEFAULT_ARCHIVE,
    host: Annotated[
        str, typer.Option(help="Address to listen on; any but loopback needs the token to read.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Browse runs, the lineage and each node, follow a run live, and review changes.

    Deciding and exporting need the reviewer token it prints (or $DGM_UI_TOKEN)."""
    import uvicorn

    from archive.errors import InvalidArgument
    from dgm.ui import create_app
    from dgm.ui.sessions import TOKEN_VARIABLE

    token = os.environ.get(TOKEN_VARIABLE) or secrets.token_urlsafe(24)
    if len(token) < 16:
        raise InvalidArgument(f"${TOKEN_VARIABLE} is too short: give it 16 characters or more")
    _check_free(host, port)
    with open_archive(archive) as arc:
        app = create_app(arc, token, open_reading=_loopback(host))
        shown = host if ":" not in host else f"[{host}]"
        # soft wrap: the address and the token are copied whole
        say = partial(console.print, soft_wrap=True)
        say(f"dgm ui: http://{shown}:{port}/ over {arc.root}")
        if TOKEN_VARIABLE in os.environ:
            say(f"reviewer token: the one in ${TOKEN_VARIABLE}")
        else:
            say(f"reviewer token: {token}")
        if not _loopback(host):
            say("not loopback only: reading needs the token too")
        # open event streams (live dashboards) must not hold a stopping server for long
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_free(host: str, port: int) -> None:
    from archive.errors import InvalidArgument

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise InvalidArgument(
                f"cannot listen on {host}:{port} ({error.strerror}): give another --port or --host"
            ) from None
