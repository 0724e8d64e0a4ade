"""Polyglot-format grading, on the built-in suite, in fresh Docker sandboxes."""

from __future__ import annotations

import shutil

import pytest

from archive.records import EvalStatus
from benchmarks.agent_run import git_repository
from benchmarks.base import BenchmarkError
from benchmarks.polyglot import BUILTIN, PolyglotBenchmark, checkout
from sandbox.docker_sandbox import DockerSandbox
from tests.conftest import agent_patch


@pytest.fixture(scope="module")
def bench(docker_client, base_image) -> PolyglotBenchmark:
    return PolyglotBenchmark(lambda s: DockerSandbox(base_image, s, client=docker_client))


def test_the_built_in_suite_has_twenty_python_exercises_of_graded_difficulty(bench):
    tasks = bench.tasks()
    assert len(tasks) >= 20 and all(t.startswith("python/") for t in tasks)
    statement = bench.statement("python/roman")
    assert "subtractive" in statement and "roman.py" in statement


def test_every_reference_solution_resolves_and_no_starting_code_does(bench):
    for task in bench.tasks():
        reference = bench.grade(task, bench.reference_patch(task))
        assert reference.status is EvalStatus.RESOLVED, (task, reference.log)
        baseline = bench.grade(task, "")
        assert baseline.status is EvalStatus.EMPTY, (task, baseline.log)
        assert "failed" in baseline.log, (task, baseline.log)


def test_the_agent_never_sees_the_tests_or_the_reference(bench, tmp_path):
    bench.workspace("python/lru_cache", tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["lru_cache.py"]
    # the diagnosis of a failure is shown them, as DGM shows its diagnosis model
    hidden = bench.hidden_tests("python/lru_cache")
    assert hidden.startswith("## lru_cache_test.py\n```\n") and "def test_" in hidden


def test_edits_of_the_tests_are_dropped(bench, tmp_path):
    cheat = {"shout_test.py": "def test_nothing():\n    pass\n", "shout.py": "def shout(t):\n"}
    outcome = bench.grade("python/shout", agent_patch(tmp_path, bench, "python/shout", cheat))
    assert outcome.status is EvalStatus.UNRESOLVED
    assert "dropped its edits of shout_test.py" in outcome.log


def test_a_patch_that_does_not_apply_is_unresolved(bench):
    stale = "diff --git a/shout.py b/shout.py\n--- a/shout.py\n+++ b/shout.py\n"
    stale += "@@ -1,2 +1,2 @@\n-def yell(text):\n+def shout(text):\n     pass\n"
    outcome = bench.grade("python/shout", stale)
    assert outcome.status is EvalStatus.UNRESOLVED
    assert "the patch does not apply" in outcome.log


def test_bad_paths_and_tasks(bench, tmp_path):
    with pytest.raises(BenchmarkError, match="is not a polyglot-benchmark checkout"):
        PolyglotBenchmark(lambda s: None, tmp_path)
    with pytest.raises(BenchmarkError, match="no task 'python/nope'"):
        bench.statement("python/nope")
    # grading never raises: an unknown task is an error outcome saying so
    outcome = bench.grade("go/roman", "")
    assert (outcome.status, outcome.log) == (EvalStatus.ERROR, "no task 'go/roman' in polyglot")


def test_subsets_are_stages_of_growing_size(bench, tmp_path):
    subsets = bench.subsets()
    assert set(subsets["small"]) < set(subsets["medium"]) < set(bench.tasks())
    checkout = tmp_path / "checkout"
    shutil.copytree(BUILTIN, checkout)
    (checkout / "subsets" / "bad.txt").write_text("python/roman\npython/nope\n")
    broken = PolyglotBenchmark(lambda s: None, checkout)
    with pytest.raises(BenchmarkError, match="names unknown task 'python/nope'"):
        broken.subsets()


def test_a_git_url_is_cloned_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    upstream = shutil.copytree(BUILTIN, tmp_path / "upstream")
    git_repository(upstream)
    url = f"file://{upstream}"
    first = checkout(url)
    assert len(PolyglotBenchmark(lambda s: None, first).tasks()) == 23
    shutil.rmtree(upstream)  # the second time, the cache is used
    assert checkout(url) == first
    assert checkout(str(tmp_path)) == tmp_path  # a folder is taken as it is
    with pytest.raises(
        BenchmarkError, match=r"cannot clone file:///nowhere\.git: .*give a checkout"
    ):
        checkout("file:///nowhere.git")
