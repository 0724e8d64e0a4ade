"""SIGKILL a writer at random moments: the archive must open cleanly and lose nothing it acked."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from archive import Archive

WRITER = textwrap.dedent(
    """
    import random, sys
    from pathlib import Path
    from archive import Archive, EvalStatus, EvaluationResult

    archive, work = Path(sys.argv[1]), Path(sys.argv[2])
    work.mkdir(exist_ok=True)
    (work / "agent.py").write_text("seed\\n")
    with Archive.open(archive) as arc:
        ids = [n.id for n in arc.nodes()]
        print("READY", flush=True)
        i = 0
        while True:
            i += 1
            (work / "agent.py").write_text(f"version {random.random()}\\n")
            (work / f"mod{i % 5}.py").write_text(str(i) * 200)
            parent = random.choice(ids) if ids and random.random() < 0.9 else None
            node = arc.add_node(work, parent=parent, proposal=f"change {i}")
            ids.append(node.id)
            print("NODE", node.id, flush=True)
            results = [EvaluationResult("b", f"t{t}", random.choice(list(EvalStatus)),
                                        log=b"log %d" % t) for t in range(3)]
            arc.record_evaluations(node.id, results)
            print("EVALS", node.id, flush=True)
    """
)


def run_and_kill(archive: Path, work: Path, delay: float) -> tuple[set[str], set[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(archive), str(work)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "READY"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate()
    nodes, evaluated = set(), set()
    # only whole lines are acknowledgements: the kill may cut the last one short
    for line in out.split("\n")[:-1]:
        kind, _, node_id = line.partition(" ")
        (nodes if kind == "NODE" else evaluated).add(node_id)
    return nodes, evaluated


def assert_consistent(archive: Path, acked: set[str], evaluated: set[str]) -> None:
    with Archive.open(archive) as arc:
        report = arc.check()
        assert report.ok, report.problems
        stored = {n.id for n in arc.nodes()}
        assert acked <= stored, f"acknowledged nodes lost: {acked - stored}"
        summaries = {s.id: s for s in arc.summaries()}
        for node_id in stored:
            rows = arc.evaluations(node_id)
            # a batch is one transaction: all three results or none, all three once acked
            assert len(rows) == (3 if node_id in evaluated else len(rows)) and len(rows) in (0, 3)
            counted = sum(e.status != "error" for e in rows)
            assert summaries[node_id].score.attempted == counted  # totals match their rows
            for e in rows:
                assert e.log_blob is None or arc.blobs.exists(e.log_blob)
    if (archive / "archive.db").exists():
        with sqlite3.connect(archive / "archive.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.slow
def test_sigkill_while_adding_nodes(tmp_path, database_url):
    archive = tmp_path / "arc"
    Archive.init(archive, database_url=database_url).close()
    rng = random.Random(1234)
    acked: set[str] = set()
    evaluated: set[str] = set()
    rounds = 30 if database_url is None else 10
    for _ in range(rounds):
        nodes, evals = run_and_kill(archive, tmp_path / "work", rng.uniform(0.02, 0.5))
        acked |= nodes
        evaluated |= evals
        assert_consistent(archive, acked, evaluated)
    assert len(acked) > rounds  # the writer really got going between kills


@pytest.mark.slow
def test_sigkill_during_init_leaves_all_or_nothing(tmp_path):
    rng = random.Random(99)
    code = "import sys; from archive import Archive; Archive.init(sys.argv[1]).close()"
    for i in range(10):
        target = tmp_path / f"arc{i}"
        proc = subprocess.Popen([sys.executable, "-c", code, str(target)])
        time.sleep(rng.uniform(0.0, 1.0))
        proc.kill()
        proc.wait()
        if target.exists():
            Archive.open(target).close()  # complete, or not there at all
