"""A generated archive shaped like a long DGM run, for the web UI's tests and
`scripts/perf/ui.py`: one run, a seed and its descendants (parents drawn mostly among the
better admitted nodes, as a search would), each child changing one file of its parent; most
admitted, some rejected, a few waiting for a person or pending; results on a few tasks each;
an automated review per child."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from archive import Archive, EvalStatus, EvaluationResult, Origin
from archive.events import RunTasks
from archive.records import NodeStatus

TASKS = [f"task-{i}" for i in range(10)]
STATUSES = (
    [NodeStatus.ADMITTED] * 14
    + [NodeStatus.REJECTED] * 4
    + [
        NodeStatus.AWAITING_APPROVAL,
        NodeStatus.PENDING,
    ]
)
RISKS = ["low"] * 8 + ["medium", "high"]


def build_lineage(root: Path, nodes: int, *, seed: int = 0) -> dict[str, str]:
    """Build the archive at `root`; returns the run's and the seed's ids."""
    rng = random.Random(seed)
    work = root.parent / f"{root.name}-work"
    work.mkdir(parents=True)
    (work / "agent.py").write_text("def run(task):\n    return 'patch'\n")
    (work / "tools.py").write_text("def edit(path, text):\n    open(path, 'w').write(text)\n")
    with Archive.init(root) as arc:
        tasks = RunTasks(benchmark="builtin-polyglot", model="agent-model", searched=TASKS,
                         held_out=[])  # fmt: skip
        run = arc.create_run("lineage", {"selector": {"name": "score_child_prop"}}, tasks)
        first = arc.add_node(work, origin=Origin.SEED, proposal="the seed agent", run_id=run.id)
        quality = {first.id: 0.3}
        admitted = [first.id]
        _evaluate(arc, first.id, run.id, quality[first.id], rng)
        for i in range(1, nodes):
            # mostly the better admitted nodes, sometimes any: a search's taste
            pool = rng.sample(admitted, min(len(admitted), 8))
            parent = max(pool, key=quality.get) if rng.random() < 0.7 else rng.choice(pool)
            (work / "agent.py").write_text(f"def run(task):\n    return 'patch {i}'\n")
            status = rng.choice(STATUSES)
            child = arc.add_node(
                work, parent=parent, origin=Origin.SELF_MODIFICATION, status=status,
                proposal=f"change {i}: retry edits {i % 7} times", run_id=run.id,
            )  # fmt: skip
            quality[child.id] = min(0.95, max(0.0, quality[parent] + rng.gauss(0.01, 0.08)))
            _evaluate(arc, child.id, run.id, quality[child.id], rng)
            risk = "high" if status is NodeStatus.AWAITING_APPROVAL else rng.choice(RISKS)
            arc.add_review(
                child.id, reviewer="static", kind="automated", decision="reviewed",
                reason=f"risk {risk}", run_id=run.id, tree=child.tree, risk=risk, findings=[],
            )  # fmt: skip
            if status is NodeStatus.ADMITTED:
                admitted.append(child.id)
    shutil.rmtree(work)
    return {"run": run.id, "seed": first.id}


def _evaluate(arc: Archive, node: str, run: str, quality: float, rng: random.Random) -> None:
    results = [
        EvaluationResult(
            "builtin-polyglot", task,
            EvalStatus.RESOLVED if rng.random() < quality else EvalStatus.UNRESOLVED,
            stage="stage-1", model="agent-model",
        )
        for task in rng.sample(TASKS, rng.randint(3, 6))
    ]  # fmt: skip
    arc.record_evaluations(node, results, run_id=run)
