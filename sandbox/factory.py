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
    labels: dict[str, str] | None = None,
) -> Sandbox:
    """A fresh sandbox of the chosen backend (building the base image if Docker needs it and
    the settings name no other); `labels` mark a Docker sandbox's container."""
    backend = Backend(backend)
    runtime = settings.runtime if settings else None
    image = settings.image if settings else None
    if backend is Backend.BWRAP and runtime:
        raise SandboxError(f"the {runtime} runtime needs the docker backend, not bwrap")
    if backend is Backend.BWRAP and image:
        raise SandboxError(f"the image {image} needs the docker backend, not bwrap")
    if backend is not Backend.BWRAP:
        try:
            client = connect()
        except SandboxError:
            # a runtime such as gVisor was asked for: falling back to bubblewrap would drop it
            if backend is Backend.DOCKER or runtime or image or not bwrap_sandbox.available():
                raise
        else:
            image = image or ensure_base_image(client)
            return DockerSandbox(
                image, settings, run_id=run_id, unit_id=unit_id, labels=labels, client=client
            )
    return BwrapSandbox(settings)
