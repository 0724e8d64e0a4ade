"""The benchmarks dgm knows by name, opened the same way by the command line and by runs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from benchmarks.base import Benchmark, BenchmarkError, read_ids
from sandbox.base import Backend

PUBLISHED = Path(__file__).with_name("published")
NAMES = {
    "builtin-polyglot": "built-in Python exercises in Polyglot's format (offline)",
    "builtin-swebench": "built-in SWE-bench-format instances, images built offline",
    "polyglot": "Aider's polyglot-benchmark: a checkout, or a git URL to clone (--path)",
    "swebench": "a SWE-bench dataset: .json/.jsonl/.parquet file, or a Hugging Face name (--path)",
}


def open_benchmark(
    name: str,
    path: str | None = None,
    *,
    backend: Backend = Backend.AUTO,
    language: str | None = None,
    pull: bool = False,
    status: Callable[[str], AbstractContextManager] = lambda message: contextlib.nullcontext(),
) -> Benchmark:
    """`status(message)` wraps slow one-time work (building the polyglot toolchain image)."""
    from sandbox.factory import open_sandbox

    if name not in NAMES:
        raise BenchmarkError(f"no benchmark {name!r}; `dgm bench list` shows them")
    if name in ("polyglot", "swebench") and path is None:
        raise BenchmarkError(f"the {name} benchmark needs a path; `dgm bench list` says what")

    def new_sandbox(settings):
        return open_sandbox(backend, settings)

    if name.endswith("swebench"):
        if language is not None:
            raise BenchmarkError("--language is for polyglot benchmarks")
        if name == "builtin-swebench":
            from benchmarks.swebench_suite import builtin_swebench

            return builtin_swebench(new_sandbox)
        from benchmarks.swebench import SWEBenchBenchmark, load_rows

        return SWEBenchBenchmark(load_rows(path or ""), new_sandbox, name=name, pull=pull)
    from benchmarks.polyglot import BUILTIN, TOOLCHAINS, PolyglotBenchmark, checkout

    def toolchains() -> str:
        from sandbox.docker_sandbox import connect
        from sandbox.images import ensure_base_image

        with status("making the polyglot toolchain image (the first time: minutes)"):
            return ensure_base_image(connect(), TOOLCHAINS)

    bench = PolyglotBenchmark(
        new_sandbox, checkout(path) if path else BUILTIN, name=name, toolchains=toolchains,
        languages=(language,) if language else None,
    )  # fmt: skip
    if language in bench.unavailable:
        raise BenchmarkError(f"{language} is unavailable: {bench.unavailable[language]}")
    return bench


def subset_tasks(bench: Benchmark, subset: str) -> list[str]:
    """A named subset of the benchmark, `all`, a published task list (DGM's and HGM's, see
    `published/`), or a file of task ids (one per line)."""
    subsets = bench.subsets()
    if subset in subsets:
        return subsets[subset]
    if subset == "all":
        return bench.tasks()
    lists = published(bench)
    if subset in lists:
        return read_ids(lists[subset])
    if Path(subset).is_file():
        return read_ids(Path(subset))
    names = ", ".join([*subsets, *lists]) or "none"
    raise BenchmarkError(
        f"{bench.name} has no subset {subset!r} (it has: {names}) and no file has that name"
    )


def published(bench: Benchmark) -> dict[str, Path]:
    """The task lists DGM and HGM published for this kind of benchmark, by name (none for
    the built-in suites, whose tasks are dgm's own)."""
    if bench.name.startswith("builtin"):
        return {}
    kind = "swebench" if bench.name.endswith("swebench") else "polyglot"
    return {path.stem: path for path in sorted((PUBLISHED / kind).glob("*.txt"))}
