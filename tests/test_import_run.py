"""`dgm import dgm-run` on output folders in DGM's and HGM's exact layout, written here as their
released code writes them (jennyzzt/dgm, metauto-ai/HGM):

- DGM_outer.py, after each generation: `f.write(json.dumps({"generation": gen_num,
  "selfimprove_entries": ..., "children": selfimprove_ids, "children_compiled":
  selfimprove_ids_compiled, "archive": archive}, indent=2) + "\\n")` to dgm_metadata.jsonl;
- self_improve_step.py: `metadata['run_id']`, `metadata['parent_commit']`, `entry`,
  `problem_statement`, `overall_performance` saved to `<output_dir>/<run_id>/metadata.json`,
  the agent's diff to `model_patch.diff`, its conversation to `self_evo.md`;
- utils/evo_utils.py `get_model_patch_paths`: a node's code is the initial agent with every
  ancestor's patch applied, oldest first;
- hgm.py `update_metadata`: `{"n_task_evals": ..., "nodes": [node.save_as_dict() ...]}` with
  `commit_id`, `id`, `parent_id`; a child HGM failed to make is `commit_id: "failed"`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from archive import Archive
from archive.events import EventKind
from archive.records import EvalStatus, NodeStatus, Origin
from tests.conftest import run_dgm
from tests.test_cli import fails_cleanly

SEED = {
    "coding_agent.py": "def main():\n    return 'first'\n",
    "tools/edit.py": "def edit(path, text):\n    open(path, 'w').write(text)\n",
}
STATEMENT = (
    "# Coding Agent Summary\n\nThe agent edits files.\n\n# To Implement\n\n"
    "Retry the edit tool when a write fails\n\nThe agent gave up after one failed write.\n"
)


def write_files(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def git_diff(before: dict[str, str], after: dict[str, str], tmp: Path) -> str:
    """The diff DGM's agent makes: `git diff` of its repository against the base commit."""
    repo = tmp / "diff-repo"
    subprocess.run(["rm", "-rf", str(repo)], check=True)
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=u", "-c", "user.email=u@x"]
    subprocess.run([*git, "init", "-q"], check=True)
    write_files(repo, before)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    for name in before.keys() - after.keys():
        (repo / name).unlink()
    write_files(repo, after)
    subprocess.run([*git, "add", "-A"], check=True)
    return subprocess.run(
        [*git, "diff", "--cached"], check=True, capture_output=True, text=True
    ).stdout


def performance(resolved=(), unresolved=(), empty=()) -> dict:
    submitted = len(resolved) + len(unresolved) + len(empty)
    return {
        "accuracy_score": len(resolved) / submitted if submitted else 0,
        "total_resolved_instances": len(resolved),
        "total_submitted_instances": submitted,
        "files": [],
        "total_unresolved_ids": list(unresolved),
        "total_emptypatch_ids": list(empty),
        "total_resolved_ids": list(resolved),
        "total_submitted_ids": [*resolved, *unresolved, *empty],
    }


def node_folder(out: Path, name: str, metadata: dict, patch: str | None = None) -> Path:
    folder = out / name
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=4))
    if patch is not None:
        (folder / "model_patch.diff").write_text(patch)
        (folder / "self_evo.md").write_text(f"[{{'role': 'user', 'content': 'improve {name}'}}]")
    return folder


def prediction(folder: Path, run: str, task: str, patch: str) -> None:
    where = folder / "predictions" / run
    where.mkdir(parents=True, exist_ok=True)
    (where / f"{task}.json").write_text(
        json.dumps({"instance_id": task, "model_name_or_path": run, "model_patch": patch})
    )
    (where / f"{task}.md").write_text(f"[{{'role': 'assistant', 'content': 'solving {task}'}}]")


@pytest.fixture
def dgm_output(tmp_path: Path) -> tuple[Path, Path, dict[str, dict[str, str]]]:
    """A DGM run of two generations on SWE-bench ids: A improves the initial agent and is
    kept; B made no patch; C (A's child) compiled but DGM's archive did not keep it; D's
    patch was never evaluated (not compiled)."""
    seed = tmp_path / "seed"
    write_files(seed, SEED)
    code_a = {**SEED, "tools/edit.py": SEED["tools/edit.py"] + "RETRIES = 3\n"}
    code_c = {**code_a, "coding_agent.py": "def main():\n    return 'second'\n",
              "tools/search.py": "def search(): ...\n"}  # fmt: skip
    del code_c["tools/edit.py"]
    code_d = {**SEED, "README.md": "notes\n"}
    out = tmp_path / "output_dgm" / "20250101000000_000000"
    out.mkdir(parents=True)
    initial = node_folder(out, "initial", {"run_id": "initial", "overall_performance": performance(
        resolved=["django__django-11099"], unresolved=["django__django-10999"],
        empty=["sympy__sympy-99999"])})  # fmt: skip
    prediction(initial, "initial_0", "django__django-11099", "diff --git a/x b/x\n")
    prediction(initial, "initial_0", "django__django-10999", "")
    # submitted, in no list: DGM's harness gave no result (its score counts it as a failure)
    prediction(initial, "initial_0", "astropy__astropy-12907", "diff --git a/y b/y\n")
    (initial / "predictions" / "initial_0" / "astropy__astropy-12907_docker.log").write_text(
        "Evaluation timed out\n"
    )
    children = {
        "20250101_000001_000001": ("initial", git_diff(SEED, code_a, tmp_path), performance(
            resolved=["django__django-11099", "django__django-10999"])),
        "20250101_000002_000002": ("initial", None, None),
        "20250101_000003_000003": ("20250101_000001_000001", git_diff(code_a, code_c, tmp_path),
                                   performance(unresolved=["django__django-11099"])),
        "20250101_000004_000004": ("initial", git_diff(SEED, code_d, tmp_path), None),
    }  # fmt: skip
    for name, (parent, patch, perf) in children.items():
        metadata = {"run_id": name, "parent_commit": parent, "entry": "django__django-10999",
                    "problem_statement": STATEMENT}  # fmt: skip
        if perf:
            metadata |= {"overall_performance": perf, "model_patch_exists": True}
        node_folder(out, name, metadata, patch)
    a, b, c, d = children
    with (out / "dgm_metadata.jsonl").open("a") as f:
        for generation, made, compiled, archive in (
            (0, [a, b], [a], ["initial", a]),
            (1, [c, d], [c], ["initial", a]),  # keep_better: C scored below the initial agent
        ):
            f.write(json.dumps({
                "generation": generation,
                "selfimprove_entries": [[n, "django__django-10999"] for n in made],
                "children": made, "children_compiled": compiled, "archive": archive,
            }, indent=2) + "\n")  # fmt: skip
    return out, seed, {"A": code_a, "C": code_c, "D": code_d}


def test_a_dgm_run_imports_with_its_code_results_and_diagnoses(dgm_output, tmp_path):
    out, seed, codes = dgm_output
    archive = tmp_path / "archive"
    Archive.init(archive).close()
    result = run_dgm("import", "dgm-run", str(out), "--seed", str(seed), "--json", archive=archive)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["from"], summary["benchmark"], summary["run"]) == (
        "dgm", "swebench", "dgm-20250101000000_000000",
    )  # fmt: skip
    assert (summary["admitted"], summary["rejected"], summary["failed_attempts"]) == (2, 2, 1)
    ids = summary["nodes"]
    a, c, d = (ids[f"20250101_00000{n}_00000{n}"] for n in (1, 3, 4))
    with Archive.open(archive) as arc:
        nodes = {n.id: n for n in arc.nodes()}
        seed_node = nodes[ids["initial"]]
        assert (seed_node.origin, seed_node.parent_id) == (Origin.SEED, None)
        assert (nodes[a].parent_id, nodes[c].parent_id, nodes[d].parent_id) == (
            seed_node.id, a, seed_node.id,
        )  # fmt: skip
        # each node's code: the initial agent with every ancestor's patch, oldest first
        for node_id, files in ((a, codes["A"]), (c, codes["C"]), (d, codes["D"])):
            checkout = tmp_path / f"checkout-{node_id}"
            arc.git.checkout(nodes[node_id].commit, checkout)
            found = {str(p.relative_to(checkout)): p.read_text()
                     for p in checkout.rglob("*") if p.is_file()}  # fmt: skip
            assert found == files
        assert [nodes[n].status for n in (seed_node.id, a, c, d)] == [
            NodeStatus.ADMITTED, NodeStatus.ADMITTED, NodeStatus.REJECTED, NodeStatus.REJECTED,
        ]  # fmt: skip
        assert "did not keep it in its archive" in nodes[c].meta["reason"]
        assert "compiled" in nodes[d].meta["reason"]
        # the diagnosis, the change and the conversation that made it
        assert nodes[a].meta["entry"] == "django__django-10999"
        assert nodes[a].meta["problem_statement"] == STATEMENT
        assert nodes[a].proposal.startswith("# Retry the edit tool when a write fails\n")
        assert b"improve 20250101_000001" in arc.blobs.get(nodes[a].meta["trajectory_blob"])
        # every task result, on DGM's stage lists (django__django-10999 is in its first)
        evaluations = {e.task: e for e in arc.evaluations(seed_node.id)}
        assert {t: e.status for t, e in evaluations.items()} == {
            "django__django-11099": EvalStatus.RESOLVED,
            "django__django-10999": EvalStatus.UNRESOLVED,
            "sympy__sympy-99999": EvalStatus.EMPTY,
            "astropy__astropy-12907": EvalStatus.ERROR,
        }
        lost = arc.blobs.get(evaluations["astropy__astropy-12907"].log_blob)
        assert lost.startswith(b"DGM's harness gave no result") and b"timed out" in lost
        assert arc.scores(seed_node.id).overall.attempted == 3  # an error is not counted
        assert evaluations["django__django-10999"].stage == "stage-1"
        assert evaluations["sympy__sympy-99999"].stage == "full"
        resolved = evaluations["django__django-11099"]
        assert arc.blobs.get(resolved.patch_blob) == b"diff --git a/x b/x\n"
        assert b"solving django__django-11099" in arc.blobs.get(resolved.trajectory_blob)
        assert arc.scores(a).overall.resolved == 2 and arc.scores(c).overall.attempted == 1
        # the attempt that made no patch
        (failed,) = arc.events_of(arc.runs()[0].id, EventKind.EXPANSION_FAILED)
        assert failed.node_id == seed_node.id and failed.payload["reason"] == "it made no patch"
        assert arc.runs()[0].status == "finished"
    # the run's answer, by DGM's selector, as for a run made here
    status = json.loads(run_dgm("status", "--json", archive=archive).stdout)
    assert (status["best"]["id"], status["selector"]["name"]) == (a, "score_child_prop")
    shown = run_dgm("show", a, archive=archive)
    assert shown.returncode == 0 and "1.000 (2/2" in shown.stdout, shown.stdout
    again = run_dgm("import", "dgm-run", str(out), "--seed", str(seed), archive=archive)
    fails_cleanly(again, "has a run named 'dgm-20250101000000_000000'", "--name")


def test_a_patch_that_leaves_the_agent_folder_imports_nothing(dgm_output, tmp_path):
    out, seed, _ = dgm_output
    escape = out / "20250101_000003_000003" / "model_patch.diff"
    escape.write_text(
        "diff --git a/../../outside.py b/../../outside.py\nnew file mode 100644\n"
        "--- /dev/null\n+++ b/../../outside.py\n@@ -0,0 +1 @@\n+owned = True\n"
    )
    archive = tmp_path / "archive"
    Archive.init(archive).close()
    result = run_dgm("import", "dgm-run", str(out), "--seed", str(seed), archive=archive)
    fails_cleanly(result, "20250101_000003_000003", "outside its folder or in .git")
    assert not (tmp_path / "outside.py").exists()
    # names become paths here: a node or task named to climb out of the folder is refused
    metadata = out / "dgm_metadata.jsonl"
    text = metadata.read_text()
    metadata.write_text(text.replace('"20250101_000004_000004"', '"../../../etc"'))
    climbing = run_dgm("import", "dgm-run", str(out), "--seed", str(seed), archive=archive)
    fails_cleanly(climbing, "'../../../etc' is not a node name")
    metadata.write_text(text)
    initial = json.loads((out / "initial" / "metadata.json").read_text())
    initial["overall_performance"]["total_resolved_ids"] = ["../../../../etc/passwd"]
    (out / "initial" / "metadata.json").write_text(json.dumps(initial))
    reaching = run_dgm("import", "dgm-run", str(out), "--seed", str(seed), archive=archive)
    fails_cleanly(reaching, "'../../../../etc/passwd' is not a task name")
    with Archive.open(archive) as arc:
        assert arc.runs() == [] and arc.nodes() == []


def test_the_wrong_seed_or_a_folder_that_is_no_run_is_refused(dgm_output, tmp_path):
    out, _, _ = dgm_output
    other = tmp_path / "other-seed"
    write_files(other, {"coding_agent.py": "print('another agent')\n"})
    archive = tmp_path / "archive"
    Archive.init(archive).close()
    wrong = run_dgm("import", "dgm-run", str(out), "--seed", str(other), archive=archive)
    fails_cleanly(wrong, "does not apply", "is", "the agent the run started from?")
    nothing = run_dgm("import", "dgm-run", str(tmp_path), "--seed", str(other), archive=archive)
    fails_cleanly(nothing, "is not a DGM or HGM output folder")
    (out / "initial" / "metadata.json").unlink()
    (out / "initial" / "metadata.json").symlink_to(out / "dgm_metadata.jsonl")
    linked = run_dgm("import", "dgm-run", str(out), "--seed", str(other), archive=archive)
    fails_cleanly(linked, "initial/metadata.json is missing (or not a regular file)")
    with Archive.open(archive) as arc:
        assert arc.runs() == [] and arc.nodes() == []


def test_an_hgm_tree_on_polyglot_imports(tmp_path):
    seed = tmp_path / "seed"
    write_files(seed, SEED)
    code_1 = {**SEED, "coding_agent.py": "def main():\n    return 'hgm'\n"}
    code_3 = {**code_1, "tools/edit.py": "def edit(path, text):\n    pass\n"}
    out = tmp_path / "output_hgm"
    out.mkdir()
    node_folder(out, "initial", {"run_id": "initial", "overall_performance": performance(
        resolved=["python__leap"], unresolved=["cpp__all-your-base"])})  # fmt: skip
    for name, parent, before, after, perf in (
        ("h1", "initial", SEED, code_1, performance(resolved=["python__leap", "go__bob"])),
        ("h3", "h1", code_1, code_3, performance(empty=["go__bob"])),
    ):
        node_folder(out, name, {"run_id": name, "parent_commit": parent, "entry": "go__bob",
                                "problem_statement": STATEMENT, "overall_performance": perf},
                    git_diff(before, after, tmp_path))  # fmt: skip
    nodes = [
        {"commit_id": "h1", "id": 1, "parent_id": 0, "mean_utility": 1.0, "num_evals": 2},
        {"commit_id": "failed", "id": 2, "parent_id": 1, "mean_utility": 0, "num_evals": 0},
        {"commit_id": "h3", "id": 3, "parent_id": 1, "mean_utility": 0.0, "num_evals": 1},
    ]
    with (out / "hgm_metadata.jsonl").open("a") as f:
        for count in (1, 3):
            f.write(json.dumps({"n_task_evals": count, "nodes": nodes[:count]}, indent=2) + "\n")
    archive = tmp_path / "archive"
    Archive.init(archive).close()
    result = run_dgm("import", "dgm-run", str(out), "--seed", str(seed), "--json", archive=archive)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["from"], summary["benchmark"]) == ("hgm", "polyglot")
    status = json.loads(run_dgm("status", "--json", archive=archive).stdout)
    assert (status["selector"]["name"], status["best"]["id"]) == ("cmp", summary["nodes"]["h1"])
    assert (summary["admitted"], summary["failed_attempts"], summary["evaluations"]) == (3, 1, 5)
    with Archive.open(archive) as arc:
        h3 = arc.node(summary["nodes"]["h3"])
        assert h3.parent_id == summary["nodes"]["h1"]
        assert arc.git.read_file(h3.commit, "tools/edit.py") == code_3["tools/edit.py"].encode()
        assert {e.task: e.status for e in arc.evaluations(summary["nodes"]["initial"])} == {
            "python/leap": EvalStatus.RESOLVED, "cpp/all-your-base": EvalStatus.UNRESOLVED,
        }  # fmt: skip
        (failed,) = arc.events_of(arc.runs()[0].id, EventKind.EXPANSION_FAILED)
        assert failed.node_id == summary["nodes"]["h1"]
