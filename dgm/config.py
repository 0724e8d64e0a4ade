"""A run's configuration: one YAML file validated by pydantic, with `--set dotted.key=value`
overrides. Every option has a default that works offline on one machine."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from benchmarks.agent_run import AgentLimits
from dgm.budget import Budget
from dgm.review.gates import ReviewPolicy
from sandbox.base import Backend, SandboxSettings

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and what to do."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Stage(Strict):
    subset: str
    """A subset's name, a file of task ids, or `all`."""
    threshold: Annotated[float, Field(ge=0, le=1)] | Literal["dgm"] = 0.0
    """Score on this stage a node needs before it is evaluated on the next one; `dgm`: DGM's
    rule for the full evaluation, a score on every task so far of at least max(0.4, the
    second-best among the seed and the nodes evaluated on every task)."""


class BenchmarkConfig(Strict):
    name: str = "builtin-polyglot"
    path: str | None = None
    """Polyglot checkout or git URL; SWE-bench dataset file or Hugging Face name."""
    pull: bool = False
    """Pull missing SWE-bench instance images from their registry."""
    stages: list[Stage] = Field(default_factory=lambda: [Stage(subset="small")], min_length=1)
    """Staged evaluation: every node starts with the first stage's tasks."""
    held_out: str | None = None
    """Subset (name or file) the search never sees; the run's answer is evaluated on it."""


class Models(Strict):
    self_modification: str = "smollm2-135m-instruct"
    """The model the parent agent runs with while it rewrites itself."""
    agent: str = "smollm2-135m-instruct"
    """The model agents use on benchmark tasks."""
    diagnosis: str = "smollm2-135m-instruct"
    """The model that reads a failure and proposes the next change."""
    excerpt_chars: int = Field(40_000, ge=1000)
    """Most characters of the agent's code, trajectory or log the diagnosis model is shown
    (each): small local models need far less."""
    diagnosis_max_tokens: int = Field(4096, ge=64)
    """Longest diagnosis answer."""
    max_output_tokens: int = Field(32768, ge=1)
    """Most output tokens any FM call may ask for: the gateway lowers a larger limit to it and
    gives it to calls that set none (each call's worst case is reserved against the budget)."""
    judge: str | None = None
    """The model that judges whether a child is worthwhile and new (novelty's `judge`);
    default: the diagnosis model."""


def _check_search(name: str, params: dict[str, Any], mode: str = "async") -> None:
    """Build the named search once: its ValueError names a bad parameter or mode."""
    from dgm.search import Population, make_search

    make_search(name, params, Population(), [], mode=mode)  # type: ignore[arg-type]


class SelectorConfig(Strict):
    name: str = "score_child_prop"
    """One of `dgm.search.NAMES`: score_child_prop, score_prop, random, best, novelty, cmp."""
    params: dict[str, Any] = {}
    """The selector's constants, e.g. `{alpha: 0.6, epsilon: 0.01}` for cmp."""

    @model_validator(mode="after")
    def _known_params(self) -> SelectorConfig:
        _check_search(self.name, self.params)
        return self


class SchedulerConfig(Strict):
    mode: Literal["async", "generational"] = "async"
    """async (HGM): a free worker takes the next unit at once. generational (DGM): k
    expansions, then the children's staged evaluation, then the next generation."""
    workers: int = Field(2, ge=1)
    generation_size: int = Field(2, ge=1)
    """Expansions per generation (generational mode)."""
    lease_s: float = Field(60.0, ge=1)
    """How long the scheduler holding a run may be silent (heartbeats every sixth of it)
    before another `dgm run`, on any machine, may take the run over."""


class ExecutorConfig(Strict):
    """Where units run: in this process's worker threads (`local`), or as tasks on a Ray
    cluster (`ray`, the `ray` extra), one per unit on a node with Docker."""

    name: Literal["local", "ray"] = "local"
    address: str = "auto"
    """Ray: the cluster to join (`auto`: the one started on this machine with `ray start`;
    else its head's `host:port`)."""
    cpus: float = Field(1.0, gt=0)
    """Ray: CPUs each unit holds."""
    memory_mb: int | None = Field(None, ge=1)
    """Ray: memory each unit holds (None: none is reserved)."""
    docker_slots: float = Field(1.0, gt=0)
    """Ray: the custom resource `docker` each unit holds; a node started with
    `--resources='{"docker": N}'` runs N units at once."""
    retries: int = Field(3, ge=0)
    """Ray: how often a unit whose node was lost is run again elsewhere."""


class SandboxConfig(SandboxSettings):
    model_config = ConfigDict(extra="forbid")
    backend: Backend = Backend.AUTO


class RunConfig(Strict):
    name: str = "run"
    archive: Path = Path("dgm-archive")
    seed_agent: Path | None = None
    """The agent the run starts from; default: dgm's seed agent."""
    benchmark: BenchmarkConfig = BenchmarkConfig()
    models: Models = Models()
    selector: SelectorConfig = SelectorConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    executor: ExecutorConfig = ExecutorConfig()
    agent: AgentLimits = AgentLimits()
    sandbox: SandboxConfig = SandboxConfig()
    budget: Budget = Budget()
    review: ReviewPolicy = ReviewPolicy()
    """The safety review of each child and what each gate does with its risk."""
    seed: int | None = None
    """Random seed of the selector and entry choice (None: fresh each run)."""

    @model_validator(mode="after")
    def _mode_fits_selector(self) -> RunConfig:
        _check_search(self.selector.name, self.selector.params, self.scheduler.mode)
        return self


def load_config(path: Path | None, overrides: list[str] = ()) -> RunConfig:
    """The file's settings (none: the defaults) with `dotted.key=value` overrides on top;
    values are read as YAML (`budget.usd=5`, `benchmark.stages=[{subset: small}]`)."""
    data: dict[str, Any] = {}
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"no config file {path}")
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark else ""
            problem = getattr(error, "problem", None) or "cannot be read"
            raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from error
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must be a mapping of settings")
    set_values(data, overrides)
    return validated(RunConfig, data, f"{path}: " if path else "")


def validated(model: type[M], data: dict[str, Any], source: str = "") -> M:
    """`data` as `model`; the first thing wrong, named by its dotted key, as a ConfigError."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "no such setting"
        raise ConfigError(f"{source}{where}: {message}" if where else source + message) from error


def set_values(data: dict[str, Any], overrides: Iterable[str]) -> None:
    """Apply `dotted.key=value` overrides to nested settings; values are read as YAML."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {override!r}: write it as dotted.key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        target = data
        *parents, last = key.strip().split(".")
        for part in parents:
            if not isinstance(target.get(part, {}), dict):
                raise ConfigError(f"--set {key}: {part} is not a group of settings")
            target = target.setdefault(part, {})
        target[last] = value


def dump_config(config: RunConfig) -> dict[str, Any]:
    """The whole configuration as plain data (what the run row and provenance keep)."""
    return config.model_dump(mode="json")
