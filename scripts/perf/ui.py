"""The web UI's server time for the lineage tree and a node page at 2,000 and 10,000 nodes.

    .venv/bin/python scripts/perf/ui.py [--nodes 2000 10000] [--repeat 5]

Each archive is generated as the UI tests make theirs (`tests/lineage_archive.py`: one run,
parents drawn among the better admitted nodes, a fifth of the children rejected, each child
reviewed and evaluated on a few tasks); `dgm ui` serves it and each page is fetched
`--repeat` times over loopback: the median wall time of a request (the server's time plus a
loopback transfer). Target: under 1 s for the 2,000-node tree.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the generator is the tests'
from tests.conftest import ui_server
from tests.lineage_archive import build_lineage


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'nodes':>6}  {'page':<28} {'median s':>9} {'max s':>7} {'KB':>7}")
    for count in args.nodes:
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder) / "archive"
            start = time.perf_counter()
            ids = build_lineage(root, count)
            print(f"{count:>6}  (archive built in {time.perf_counter() - start:.0f} s)")
            with ui_server(root) as base:
                placed = requests.get(base + "/api/tree").json()["nodes"]
                deep = [n["id"] for n in placed if n["status"] != "dead"][-1]  # not a marker
                for path in ("/tree", "/tree?collapse=0", "/api/tree", f"/nodes/{ids['seed']}",
                             f"/nodes/{deep}", f"/runs/{ids['run']}"):  # fmt: skip
                    times, size = [], 0
                    for _ in range(args.repeat):
                        began = time.perf_counter()
                        answer = requests.get(base + path)
                        times.append(time.perf_counter() - began)
                        answer.raise_for_status()
                        size = len(answer.content)
                    name = path.replace(ids["seed"], "SEED").replace(deep, "LEAF")
                    name = name.replace(ids["run"], "RUN")
                    print(f"{count:>6}  {name:<28} {statistics.median(times):>9.3f} "
                          f"{max(times):>7.3f} {size / 1024:>7.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
