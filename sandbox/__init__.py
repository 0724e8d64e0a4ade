"""Where untrusted agent code runs. Imports nothing from the other layers."""

from sandbox.base import ExecResult, ExecStatus, Sandbox, SandboxError, SandboxSettings
from sandbox.bwrap_sandbox import BwrapSandbox
from sandbox.docker_sandbox import DockerSandbox
from sandbox.factory import Backend, open_sandbox

__all__ = [
    "Backend",
    "BwrapSandbox",
    "DockerSandbox",
    "ExecResult",
    "ExecStatus",
    "Sandbox",
    "SandboxError",
    "SandboxSettings",
    "open_sandbox",
]
