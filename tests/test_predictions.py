"""SWE-bench predictions from the archive, checked by swebench's own harness: the instances
`swebench.harness.run_evaluation` resolves from `dgm predictions`' file are exactly those
dgm's grading resolved (offline, on the built-in instances' local images; this Docker engine
has no bridge network, so its containers have none either)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from archive import Archive, EvalStatus, EvaluationResult, Origin
from benchmarks.swebench_suite import builtin_swebench, rows
from dgm.expand import SEED_AGENT
from sandbox.docker_sandbox import DockerSandbox
from tests.conftest import run_dgm

NOTES = """diff --git a/NOTES.md b/NOTES.md
new file mode 100644
--- /dev/null
+++ b/NOTES.md
@@ -0,0 +1 @@
+looked at it
"""


@pytest.fixture(scope="module")
def bench(docker_client, base_image):
    return builtin_swebench(
        lambda settings: DockerSandbox(base_image, settings, client=docker_client), docker_client
    )


def test_swebench_s_harness_resolves_what_dgm_resolved(bench, tmp_path):
    dataset = {row["instance_id"]: row for row in rows()}
    tasks = sorted(dataset)
    assert len(tasks) == 5
    # gold patches for two, none for one, a patch that fixes nothing for two
    chosen = dict(zip(tasks, ["gold", "gold", "empty", "wrong", "wrong"], strict=True))
    patch = {"gold": lambda t: dataset[t]["patch"], "empty": lambda t: "", "wrong": lambda t: NOTES}
    archive = tmp_path / "archive"
    with Archive.init(archive) as arc:
        node = arc.add_node(SEED_AGENT, origin=Origin.SEED, proposal="seed").id
        for task, kind in chosen.items():
            text = patch[kind](task)
            status = bench.grade(task, text).status if text else EvalStatus.EMPTY
            result = EvaluationResult(
                bench.name, task, status, stage="default", model="m", patch=text.encode()
            )
            arc.record_evaluations(node, [result])
        graded = {e.task: e.status for e in arc.evaluations(node)}
    assert [t for t, s in graded.items() if s is EvalStatus.RESOLVED] == tasks[:2]

    out = tmp_path / "preds.jsonl"
    written = run_dgm("predictions", node[:8], "--benchmark", "builtin-swebench", "--out", str(out),
                      archive=archive)  # fmt: skip
    assert written.returncode == 0, written.stderr
    predictions = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["instance_id"] for p in predictions] == tasks
    assert {p["model_name_or_path"] for p in predictions} == {f"dgm-{node}"}
    assert [p["model_patch"] for p in predictions] == [patch[chosen[t]](t) for t in tasks]

    (tmp_path / "dataset.json").write_text(json.dumps(list(dataset.values())))
    harness = subprocess.run(
        [sys.executable, "-m", "swebench.harness.run_evaluation", "-d", "dataset.json",
         "-p", str(out), "-id", "check", "--max_workers", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert harness.returncode == 0, harness.stderr[-2000:]
    report = json.loads((tmp_path / f"dgm-{node}.check.json").read_text())
    assert report["resolved_ids"] == [t for t, s in graded.items() if s is EvalStatus.RESOLVED]
    assert report["empty_patch_ids"] == [t for t, s in graded.items() if s is EvalStatus.EMPTY]
    assert sorted(report["unresolved_ids"]) == tasks[3:]
    assert report["error_ids"] == []


def test_predictions_refuse_a_node_without_results(tmp_path, agent_dir):
    with Archive.init(tmp_path / "arc") as arc:
        node = arc.add_node(agent_dir, origin=Origin.SEED, proposal="seed").id
    out = tmp_path / "preds.jsonl"
    refused = run_dgm("predictions", node, "--benchmark", "builtin-swebench", "--out", str(out),
                      archive=tmp_path / "arc")  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"dgm: error: node {node[:8]} has no counted result on builtin-swebench"
    )
    assert not out.exists()  # nothing half-written
