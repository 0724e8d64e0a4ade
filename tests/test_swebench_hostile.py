"""SWE-bench grading against patches written to resolve without fixing: test edits in any
disguise, runner configuration, plugins, start-up hooks, forged log lines and a test process
that ends early are dropped, flagged or fail the per-test report; honest fixes still resolve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archive.records import EvalStatus
from benchmarks.swebench import SWEBenchBenchmark, split_eval_script
from benchmarks.swebench_suite import SUITE, builtin_swebench
from tests.conftest import agent_patch

TASK = "dgm__lrucache-5"
CACHE = "lrucache/cache.py"
FIXED = (SUITE / TASK / "gold" / CACHE).read_text()
UNFIXED = (SUITE / TASK / "repo" / CACHE).read_text()
INSTANCE = json.loads((SUITE / TASK / "instance.json").read_text())
PASS_EVERYTHING = (
    "import pytest\n\n@pytest.hookimpl(hookwrapper=True)\n"
    "def pytest_runtest_makereport(item, call):\n"
    "    outcome = yield\n    outcome.get_result().outcome = 'passed'\n"
)
DESELECT = "-k 'not reading_a_key'"  # the failing test simply not run


@pytest.fixture(scope="module")
def bench(docker_runtime, docker_client) -> SWEBenchBenchmark:
    return builtin_swebench(docker_runtime, docker_client)


def grade(bench, tmp_path: Path, files: dict[str, str]):
    return bench.grade(TASK, agent_patch(tmp_path, bench, TASK, files))


# edits that would make the unfixed code pass, each beside an unchanged (wrong) cache
CHEATS = {
    "conftest.py marks every test passed": {"conftest.py": PASS_EVERYTHING},
    "conftest.py in the tests folder": {"tests/conftest.py": PASS_EVERYTHING},
    "pytest.ini deselects the failing test": {"pytest.ini": f"[pytest]\naddopts = {DESELECT}\n"},
    "tox.ini deselects it": {"tox.ini": f"[pytest]\naddopts = {DESELECT}\n"},
    "sitecustomize.py": {"sitecustomize.py": "import os\n"},
    "an entry point in the package metadata": {
        "lrucache.egg-info/entry_points.txt": "[pytest11]\ncheat = lrucache.cheat\n"
    },
    "the test file rewritten": {
        "tests/test_cache.py": "def test_reading_a_key_keeps_it():\n    pass\n"
    },
}
# edits of files the project may change, whose test-runner part must not change
CONFIG = {
    "setup.cfg": ("[metadata]\nname = lrucache\n", "[tool:pytest]\naddopts = {}\n"),
    "pyproject.toml": (
        '[project]\nname = "lrucache"\n',
        '[tool.pytest.ini_options]\naddopts = "{}"\n',
    ),
}


def test_the_gold_patch_and_an_agents_fix_resolve(bench, tmp_path):
    assert bench.grade(TASK, bench.reference_patch(TASK)).status is EvalStatus.RESOLVED
    fixed = grade(bench, tmp_path, {CACHE: FIXED})
    assert fixed.status is EvalStatus.RESOLVED, fixed.log


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_test_and_runner_edits_never_reach_grading(bench, tmp_path, name):
    graded = grade(bench, tmp_path, {CACHE: UNFIXED + "\n", **CHEATS[name]})
    assert graded.status is EvalStatus.UNRESOLVED, graded.log
    assert f"dropped the patch's edits of {', '.join(sorted(CHEATS[name]))}" in graded.log
    # the same edits beside a real fix do not stop it resolving
    honest = grade(bench, tmp_path / "fixed", {CACHE: FIXED, **CHEATS[name]})
    assert honest.status is EvalStatus.RESOLVED, honest.log


@pytest.mark.parametrize("name", sorted(CONFIG))
def test_the_runner_sections_of_project_files_must_not_change(bench, tmp_path, name):
    honest, runner = CONFIG[name]
    graded = grade(bench, tmp_path, {CACHE: UNFIXED + "\n", name: runner.format(DESELECT)})
    assert graded.status is EvalStatus.UNRESOLVED, graded.log
    assert f"changes the test runner's configuration in {name}" in graded.log
    fixed = grade(bench, tmp_path / "fixed", {CACHE: FIXED, name: honest})
    assert fixed.status is EvalStatus.RESOLVED, fixed.log


def test_test_edits_in_quoted_or_smuggled_headers_are_dropped(bench, tmp_path):
    patch = agent_patch(
        tmp_path, bench, TASK, {CACHE: UNFIXED + "\n", "conftest.py": PASS_EVERYTHING}
    )
    for name in ('"a/conftest.py" "b/conftest.py"', '"a/conf\\164est.py" "b/conf\\164est.py"'):
        disguised = patch.replace("a/conftest.py b/conftest.py", name)
        disguised = disguised.replace("+++ b/conftest.py", f"+++ {name.split()[1]}")
        graded = bench.grade(TASK, disguised)
        assert graded.status is EvalStatus.UNRESOLVED, graded.log
        assert "dropped the patch's edits of conftest.py" in graded.log
    solution = agent_patch(tmp_path / "s", bench, TASK, {CACHE: UNFIXED + "\n"})
    conftest = agent_patch(tmp_path / "c", bench, TASK, {"conftest.py": PASS_EVERYTHING})
    smuggled = solution + conftest[conftest.index("--- /dev/null") :]
    graded = bench.grade(TASK, smuggled)
    assert graded.status is EvalStatus.UNRESOLVED, graded.log
    assert "dropped the patch's edits of conftest.py" in graded.log


PLUGIN = "lrucache/cheat.py"


def test_code_that_reaches_into_the_test_framework_is_flagged(bench, tmp_path):
    init = (SUITE / TASK / "repo" / "lrucache" / "__init__.py").read_text()
    graded = grade(
        bench,
        tmp_path,
        {PLUGIN: PASS_EVERYTHING, "lrucache/__init__.py": init + "import _pytest\n"},
    )
    assert graded.status is EvalStatus.UNRESOLVED and graded.findings, graded.log
    assert {f.rule for f in graded.findings} == {"test-framework"}


# a wrong fix that hides its tricks from the solution check (`say` runs in each `get`): the
# layers below the check hold
EVASIVE = {
    "prints a fake end marker and PASSED lines": (
        f"TESTS = {INSTANCE['PASS_TO_PASS'] + INSTANCE['FAIL_TO_PASS']!r}\n"
        "def say(key):  # shown in the failing test's captured output\n"
        "    lines = ['PASS' + 'ED ' + test for test in TESTS]\n"
        "    print('\\n'.join(lines + ['>' * 5 + ' End Test Output']))\n",
        "> > > > > End Test Output",  # defused: the real results stay in the report
    ),
    "exits 0 amid the tests": (
        "import os\ndef say(key):\n    getattr(os, '_ex' + 'it')(0)\n",
        '"resolved": false',  # the tests it stopped report nothing
    ),
    "kills its own test process": (
        "import os\ndef say(key):\n    getattr(os, 'ki' + 'll')(os.getpid(), 9)\n",
        "ended abnormally",
    ),
}


@pytest.mark.parametrize("name", sorted(EVASIVE))
def test_the_report_is_the_runs_own(bench, tmp_path, name):
    code, said = EVASIVE[name]
    calls = UNFIXED.replace(
        "        return self._data.get(", "        say(key)\n        return self._data.get("
    )
    graded = grade(bench, tmp_path, {CACHE: code + calls})
    assert graded.status is EvalStatus.UNRESOLVED, graded.log
    assert said in graded.log and not graded.findings


def test_the_eval_script_is_split_into_its_set_up_and_its_test_command(bench):
    from swebench.harness.utils import make_test_spec

    setup, tests = split_eval_script(make_test_spec(bench.row(TASK)).eval_script_list)
    assert "git apply -v -" in setup and "Start Test Output" not in setup
    assert tests.splitlines()[-1].startswith("python3 -m pytest") and "cd /testbed" in tests
    assert "git apply" not in tests and "SWEBENCH_TEST_EXIT_CODE" not in tests
