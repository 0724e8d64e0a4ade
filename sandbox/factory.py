"""Choosing a backend: Docker when its engine answers, else bubblewrap (`auto`)."""

from __future__ import annotations

from sandbox import bwrap_sandbox
from sandbox.base import Backend, Sandbox, SandboxError, SandboxSettings
from sandbox.bwrap_sandbox import BwrapSandbox
from sandbox.docker_sandbox import DockerSandbox, connect
from sandbox.images import ensure_base_image


def open_sandbox(
    backend: Backend = Backend.AUTO,
    settings: SandboxSettings | None = None,
    *,
    run_id: str = "adhoc",
    unit_id: str = "adhoc",
) -> Sandbox:
    """A fresh sandbox of the chosen backend (building the base image if Docker needs it)."""
    backend = Backend(backend)
    if backend is not Backend.BWRAP:
        try:
            client = connect()
        except SandboxError:
            if backend is Backend.DOCKER or not bwrap_sandbox.available():
                raise
        else:
            image = ensure_base_image(client)
            return DockerSandbox(image, settings, run_id=run_id, unit_id=unit_id, client=client)
    return BwrapSandbox(settings)
