"""SWE-bench grading through the swebench package, on the built-in suite, in fresh containers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from archive.records import EvalStatus
from benchmarks.base import BenchmarkError
from benchmarks.swebench import SWEBenchBenchmark, load_rows
from benchmarks.swebench_suite import builtin_swebench, rows
from sandbox.docker_sandbox import DockerSandbox
from tests.conftest import agent_patch


@pytest.fixture(scope="module")
def new_box(docker_client, base_image):
    return lambda settings: DockerSandbox(base_image, settings, client=docker_client)


@pytest.fixture(scope="module")
def bench(new_box, docker_client) -> SWEBenchBenchmark:
    return builtin_swebench(new_box, docker_client)


def test_the_built_in_suite_is_swebench_shaped(bench):
    tasks = bench.tasks()
    assert len(tasks) >= 5
    assert bench.subsets() == {"small": ["dgm__textkit-1", "dgm__lrucache-5"]}
    row = bench.row("dgm__semver-4")
    assert row["repo"] == "dgm/semver" and "1.10.0" in bench.statement("dgm__semver-4")
    assert json.loads(json.dumps(row["FAIL_TO_PASS"]))  # plain data, as a dataset file holds
    # the base commit is the same on every machine
    assert rows()[0]["base_commit"] == rows()[0]["base_commit"]


def test_every_gold_patch_resolves_and_no_untouched_repository_does(bench):
    for task in bench.tasks():
        gold = bench.grade(task, bench.reference_patch(task))
        assert gold.status is EvalStatus.RESOLVED, (task, gold.log)
        untouched = bench.grade(task, "")
        assert untouched.status is EvalStatus.EMPTY, (task, untouched.log)
        assert '"resolved": false' in untouched.log


def test_the_workspace_is_the_repository_without_the_test_patch(bench, tmp_path):
    assert bench.hidden_tests("dgm__intervals-2") == bench.row("dgm__intervals-2")["test_patch"]
    bench.workspace("dgm__intervals-2", tmp_path)
    names = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert names == [
        "README.md",
        "intervals/__init__.py",
        "intervals/merge.py",
        "tests/test_merge.py",
    ]


def test_an_agents_fix_resolves_and_its_test_edits_are_dropped(bench, tmp_path):
    fixed = Path(__file__).parents[1] / "benchmarks/suites/swebench/dgm__lrucache-5/gold"
    patch = agent_patch(
        tmp_path, bench, "dgm__lrucache-5",
        {"lrucache/cache.py": (fixed / "lrucache/cache.py").read_text()},
    )  # fmt: skip
    assert bench.grade("dgm__lrucache-5", patch).status is EvalStatus.RESOLVED
    cheat = agent_patch(
        tmp_path / "cheat", bench, "dgm__lrucache-5",
        {
            "tests/test_cache.py": "def test_reading_a_key_keeps_it():\n    pass\n",
            "conftest.py": "import pytest\n",
            "lrucache/extra.py": "X = 1\n",
        },
    )  # fmt: skip
    outcome = bench.grade("dgm__lrucache-5", cheat)
    assert outcome.status is EvalStatus.UNRESOLVED, outcome.log
    assert "dropped the patch's edits of conftest.py, tests/test_cache.py" in outcome.log


def test_a_patch_that_does_not_apply_is_unresolved_with_the_reason(bench):
    patch = (
        "diff --git a/textkit/wrap.py b/textkit/wrap.py\n--- a/textkit/wrap.py\n"
        "+++ b/textkit/wrap.py\n@@ -1,2 +1,2 @@\n-def nothing_like_this():\n+def x():\n"
        "     pass\n"
    )
    outcome = bench.grade("dgm__textkit-1", patch)
    assert outcome.status is EvalStatus.UNRESOLVED
    assert "the patch does not apply" in outcome.log


def test_bad_dataset_rows_and_unknown_ids_are_errors_and_the_rest_goes_on(tmp_path, new_box):
    dataset = rows()
    del dataset[0]["eval_script"], dataset[0]["FAIL_TO_PASS"]
    dataset[1]["image"] = "dgm-sweb.eval.nowhere:1"
    path = tmp_path / "dataset.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in dataset))
    bench = SWEBenchBenchmark(load_rows(str(path)), new_box)
    broken, imageless, fine = (row["instance_id"] for row in dataset[:3])
    outcome = bench.grade(broken, "")
    assert outcome.status is EvalStatus.ERROR
    assert outcome.log == f"{broken} lacks the dataset fields FAIL_TO_PASS, eval_script"
    outcome = bench.grade(imageless, dataset[1]["patch"])
    assert outcome.status is EvalStatus.ERROR
    assert (
        "dgm-sweb.eval.nowhere:1" in outcome.log and "not in the local Docker engine" in outcome.log
    )
    missing = bench.grade("nobody__nothing-9", "")
    assert (missing.status, missing.log) == (
        EvalStatus.ERROR,
        "no task 'nobody__nothing-9' in swebench",
    )
    with pytest.raises(BenchmarkError, match="no task"):
        bench.statement("nobody__nothing-9")
    # the rest of the file grades (its image was built by the built-in suite's fixture)
    assert bench.grade(fine, dataset[2]["patch"]).status is EvalStatus.RESOLVED


def test_datasets_load_from_json_jsonl_and_parquet(tmp_path):
    dataset = rows()
    (tmp_path / "d.json").write_text(json.dumps(dataset))
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(row) + "\n" for row in dataset))
    import pandas

    pandas.DataFrame(dataset).to_parquet(tmp_path / "d.parquet")
    for name in ("d.json", "d.jsonl", "d.parquet"):
        loaded = load_rows(str(tmp_path / name))
        assert [r["instance_id"] for r in loaded] == [r["instance_id"] for r in dataset], name
        assert loaded[2]["patch"] == dataset[2]["patch"]
    with pytest.raises(BenchmarkError, match="no dataset file"):
        load_rows(str(tmp_path / "absent.json"))
    (tmp_path / "bad.json").write_text("[{]")
    with pytest.raises(BenchmarkError, match="cannot load the dataset"):
        load_rows(str(tmp_path / "bad.json"))
    with pytest.raises(BenchmarkError, match="row 1 of swebench has no instance_id"):
        SWEBenchBenchmark([{"repo": "x"}], lambda s: None)


def test_a_grading_container_that_dies_is_an_error(bench, docker_client, tmp_path):
    def kill_soon(settings):
        box = DockerSandbox("unused", settings, client=docker_client)
        threading.Timer(3.0, lambda: docker_client.api.remove_container(box.id, force=True)).start()
        return box

    slow = agent_patch(
        tmp_path, bench, "dgm__textkit-1",
        {"textkit/slug.py": "import time\ntime.sleep(60)\n"},
    )  # fmt: skip
    dying = SWEBenchBenchmark([bench.row("dgm__textkit-1")], kill_soon)
    start = time.monotonic()
    outcome = dying.grade("dgm__textkit-1", slow)
    assert outcome.status is EvalStatus.ERROR, outcome.log
    assert time.monotonic() - start < 30


def test_a_missing_instance_image_is_pulled_when_allowed(bench, docker_client, registry, new_box):
    row = dict(bench.row("dgm__csvlite-3"))
    local = bench.image("dgm__csvlite-3")
    row["image"] = f"{registry}/sweb.eval.dgm_1776_csvlite-3:test"
    docker_client.images.get(local).tag(row["image"])
    docker_client.images.push(row["image"])
    docker_client.images.remove(row["image"])
    try:
        offline = SWEBenchBenchmark([row], new_box, client=docker_client)
        assert offline.grade(row["instance_id"], row["patch"]).status is EvalStatus.ERROR
        online = SWEBenchBenchmark([row], new_box, client=docker_client, pull=True)
        assert online.grade(row["instance_id"], row["patch"]).status is EvalStatus.RESOLVED
    finally:
        docker_client.images.remove(row["image"], force=True)
