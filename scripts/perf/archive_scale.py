"""Archive at scale: build N nodes with E evaluations each and time what users and selectors do.

    .venv/bin/python scripts/perf/archive_scale.py [--nodes 10000] [--evals 200] [--database URL]

Each child changes one or two files of its parent (the size of a typical self-modification),
so the git store shares everything else. Evaluations are recorded one batch per node, as a
benchmark run reports them. Targets on the 2-core reference machine: selection query < 50 ms,
add-node < 20 ms, git bytes per node < 5% of a full copy of the agent.
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.progress import Progress

from archive import Archive, EvalStatus, EvaluationResult, Origin
from archive.export import export_node

WORDS = [
    "task",
    "patch",
    "repo",
    "file",
    "line",
    "edit",
    "tool",
    "model",
    "call",
    "retry",
    "test",
    "diff",
    "apply",
    "check",
    "parse",
    "result",
    "error",
    "state",
    "history",
    "prompt",
    "token",
    "budget",
    "agent",
    "bash",
    "editor",
    "view",
    "create",
    "insert",
]


def synthetic_agent(rng: random.Random) -> dict[str, bytes]:
    """About 150 KB of Python-like code in 24 files, like a small coding agent."""
    files = {}
    for i in range(24):
        folder = ("", "tools/", "utils/", "tests/")[i % 4]
        lines = []
        for f in range(rng.randint(8, 16)):
            name = "_".join(rng.choices(WORDS, k=3))
            lines.append(f"def {name}_{f}(self, {rng.choice(WORDS)}, {rng.choice(WORDS)}):")
            for _ in range(rng.randint(4, 10)):
                words = " ".join(rng.choices(WORDS, k=rng.randint(3, 8)))
                lines.append(f"    {rng.choice(WORDS)} = {rng.choice(WORDS)}({words!r})")
            lines.append(f"    return {rng.choice(WORDS)}\n")
        files[f"{folder}module_{i}.py"] = "\n".join(lines).encode()
    return files


def mutate(files: dict[str, bytes], rng: random.Random) -> dict[str, bytes]:
    """A self-modification: a 5-15 line change in one file, sometimes a second file."""
    child = dict(files)
    for path in rng.sample(sorted(files), k=1 if rng.random() < 0.7 else 2):
        lines = child[path].split(b"\n")
        at = rng.randrange(len(lines))
        block = [
            f"    # {' '.join(rng.choices(WORDS, k=6))}".encode() for _ in range(rng.randint(5, 15))
        ]
        child[path] = b"\n".join(lines[:at] + block + lines[at:])
    return child


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    shutil.rmtree(root, ignore_errors=True)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(fn, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--evals", type=int, default=200)
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default SQLite)")
    parser.add_argument("--keep", type=Path, default=None, help="build the archive here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    scratch = Path(tempfile.mkdtemp(prefix="dgm-perf-"))
    root = args.keep or scratch / "archive"
    work = scratch / "work"
    arc = Archive.init(root, database_url=args.database)
    backend = "PostgreSQL" if args.database else "SQLite"
    print(
        f"archive_scale: {args.nodes:,} nodes x {args.evals} evaluations "
        f"({args.nodes * args.evals:,} rows), {backend}, {root}"
    )

    contents: dict[str, dict[str, bytes]] = {}
    ids: list[str] = []
    add_times: list[float] = []
    tasks = [f"task-{t:03d}" for t in range(args.evals)]
    build_start = time.perf_counter()
    with Progress(transient=True) as progress:
        bar = progress.add_task("building", total=args.nodes)
        for i in range(args.nodes):
            if not ids:
                parent, files = None, synthetic_agent(rng)
            else:
                # mostly recent nodes (deep lineages), sometimes any node (wide trees)
                parent = rng.choice(ids[-100:] if rng.random() < 0.7 else ids)
                files = mutate(contents[parent], rng)
            write_tree(work, files)
            start = time.perf_counter()
            node = arc.add_node(
                work,
                parent=parent,
                origin=Origin.SELF_MODIFICATION if parent else Origin.SEED,
                proposal=f"change {i}",
            )
            add_times.append(time.perf_counter() - start)
            ids.append(node.id)
            contents[node.id] = files
            quality = rng.random()
            arc.record_evaluations(
                node.id,
                [
                    EvaluationResult(
                        "swe",
                        task,
                        EvalStatus.RESOLVED if rng.random() < quality else EvalStatus.UNRESOLVED,
                        stage="small" if t < 10 else "full",
                        duration_s=rng.uniform(10, 300),
                        cost_usd=rng.uniform(0, 0.5),
                    )
                    for t, task in enumerate(tasks)
                ],
            )
            if (i + 1) % 1000 == 0:
                arc.git.gc(auto=True)  # what a long run's maintenance does
            progress.advance(bar)
    build_s = time.perf_counter() - build_start
    gc_start = time.perf_counter()
    arc.git.gc()
    gc_s = time.perf_counter() - gc_start
    print(f"build {build_s:.1f} s, final git gc {gc_s:.1f} s")

    full_copy = sum(len(data) for data in contents[ids[-1]].values())
    # The generator's copies of every agent are not part of what is measured: freed here so
    # that their garbage-collector traffic does not land in the query timings.
    del contents
    gc.collect()

    sample = rng.sample(ids, k=min(20, len(ids)))
    selection = timed(arc.summaries, 20)

    def lineage_query() -> None:
        lineage = arc.lineage()
        node = rng.choice(sample)
        lineage.path_to_root(node)
        lineage.clade(lineage.path_to_root(node)[-1])

    lineage_times = timed(lineage_query, 20)
    dgm = str(Path(sys.executable).with_name("dgm"))
    tree_times = timed(
        lambda: subprocess.run(
            [dgm, "tree", "--json", "--archive", str(root)],
            check=True,
            stdout=subprocess.DEVNULL,
        ),
        5,
    )
    export_dirs = iter(scratch / f"export{i}" for i in range(10))
    deepest = max(sample, key=lambda n: len(arc.lineage().path_to_root(n)))
    export_times = timed(lambda: export_node(arc, deepest, next(export_dirs)), 5)
    depth = len(arc.lineage().path_to_root(deepest)) - 1

    usage = arc.disk_usage()
    git_per_node = usage["git"] / len(ids)

    def line(label: str, samples: list[float], target: str = "") -> None:
        p95 = sorted(samples)[int(0.95 * (len(samples) - 1))] * 1000
        print(f"{label:<22} median {median_ms(samples):9.1f} ms   p95 {p95:9.1f} ms   {target}")

    line("add node", add_times, "(target < 20 ms)")
    line("selection query", selection, "(target < 50 ms; score + children of every node)")
    line("lineage query", lineage_times, "(graph load + path to root + clade)")
    line("dgm tree --json", tree_times, "(whole command, process start included)")
    line("export", export_times, f"(node at depth {depth}: files + bundle + provenance)")
    print(
        f"disk per node: git {git_per_node:,.0f} B vs full copy {full_copy:,} B "
        f"= {100 * git_per_node / full_copy:.2f}% (target < 5%)"
    )
    if "sql" in usage:
        print(
            f"               sql {usage['sql'] / len(ids):,.0f} B "
            f"({args.evals} evaluation rows per node)"
        )
    arc.close()
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
