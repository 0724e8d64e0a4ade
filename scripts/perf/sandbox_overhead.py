"""What a sandbox costs: medians over N runs of each step of a sandbox's life.

    .venv/bin/python scripts/perf/sandbox_overhead.py [--runs 20]

Prints, for the Docker and the bubblewrap backend: create+start, exec of `true`, copy-in of a
10 MB tree, removal, the whole round trip; and the same `true` as a plain subprocess.
Target: round trip < 1.5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from sandbox.bwrap_sandbox import BwrapSandbox
from sandbox.docker_sandbox import DockerSandbox, connect
from sandbox.images import ensure_base_image


def ten_mb_tree(root: Path) -> Path:
    """100 files of 100 KB in 10 folders, incompressible like real binaries and data."""
    for i in range(100):
        path = root / f"dir{i % 10}" / f"file{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(100_000))
    return root


def measure(make, tree: Path, runs: int) -> dict[str, list[float]]:
    steps: dict[str, list[float]] = {
        k: [] for k in ("create+start", "exec true", "copy-in 10 MB", "remove", "round trip")
    }
    for _ in range(runs):
        t0 = time.perf_counter()
        sandbox = make()
        t1 = time.perf_counter()
        result = sandbox.exec(["true"])
        t2 = time.perf_counter()
        sandbox.copy_in(tree)
        t3 = time.perf_counter()
        sandbox.close()
        t4 = time.perf_counter()
        assert result.exit_code == 0, result
        steps["create+start"].append(t1 - t0)
        steps["exec true"].append(t2 - t1)
        steps["copy-in 10 MB"].append(t3 - t2)
        steps["remove"].append(t4 - t3)
        steps["round trip"].append((t2 - t0) + (t4 - t3))  # start, trivial command, remove
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    client = connect()
    image = ensure_base_image(client)
    with tempfile.TemporaryDirectory() as tmp:
        tree = ten_mb_tree(Path(tmp))
        backends = {
            "docker": measure(lambda: DockerSandbox(image, client=client), tree, args.runs),
            "bwrap": measure(BwrapSandbox, tree, args.runs),
        }
    plain = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run(["true"], check=True)
        plain.append(time.perf_counter() - start)
    print(f"sandbox_overhead: {args.runs} runs each, image {image}")
    for backend, steps in backends.items():
        for name, samples in steps.items():
            target = "   (target < 1500 ms)" if name == "round trip" else ""
            label = f"{backend} {name}"
            print(f"{label:<22} median {statistics.median(samples) * 1000:8.1f} ms{target}")
    print(f"{'plain true':<22} median {statistics.median(plain) * 1000:8.1f} ms (subprocess)")
    print("gateway overhead: not measured yet (the FM gateway is not built)")


if __name__ == "__main__":
    main()
