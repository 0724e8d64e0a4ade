"""Where untrusted agent code runs. Imports nothing from the other layers.

Backends live in `docker_sandbox` and `bwrap_sandbox`, chosen by `factory.open_sandbox`;
they are imported where used, since the Docker SDK costs every `dgm` command 0.3 s.
"""

from sandbox.base import Backend, ExecResult, ExecStatus, Sandbox, SandboxError, SandboxSettings

__all__ = ["Backend", "ExecResult", "ExecStatus", "Sandbox", "SandboxError", "SandboxSettings"]
