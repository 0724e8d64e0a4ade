"""Polyglot grading against patches written to score without solving: each is dropped,
flagged or failed by the per-test report, beside honest patches that still resolve."""

from __future__ import annotations

import shutil

import pytest

from archive.records import EvalStatus
from benchmarks.polyglot import BUILTIN, PolyglotBenchmark
from benchmarks.polyglot_runners import RUNNERS
from sandbox.docker_sandbox import DockerSandbox
from tests.conftest import agent_patch

TASK = "python/shout"
SHOUT = "python/exercises/practice/shout"
RIGHT = "def shout(text):\n    return text.upper() + '!'\n"
WRONG = "def shout(text):\n    return text\n"
PASS_EVERYTHING = "import pytest\n@pytest.hookimpl(tryfirst=True)\n" + (
    "def pytest_runtest_makereport(item, call):\n"
    "    from _pytest.reports import TestReport\n"
    "    return TestReport(item.nodeid, item.location, {}, 'passed', None, call.when, [])\n"
)
# runner configuration and modules an agent might add to make the tests pass or vanish
PLANTED = {
    "conftest.py (tests marked passed)": {"conftest.py": PASS_EVERYTHING},
    "conftest.py (exit 0)": {"conftest.py": "import os\nos._exit(0)\n"},
    "pytest.ini addopts": {"pytest.ini": "[pytest]\naddopts = -p no:python -q\n"},
    "setup.cfg python_files": {"setup.cfg": "[tool:pytest]\npython_files = nothing_*.py\n"},
    "tox.ini plugin": {"tox.ini": "[pytest]\naddopts = -p cheat\n", "cheat.py": PASS_EVERYTHING},
    "pyproject.toml": {"pyproject.toml": "[tool.pytest.ini_options]\naddopts = '-k nothing'\n"},
    "pytest.py shadowing the runner": {"pytest.py": "import os\nos._exit(0)\n"},
    "unittest.py shadowing the library": {"unittest.py": "import os\nos._exit(0)\n"},
    "sitecustomize.py": {"sitecustomize.py": "import os\nos._exit(0)\n"},
    "the tests rewritten": {"shout_test.py": "def test_nothing():\n    pass\n"},
}
# solutions that cheat from inside the test process
CHEATING = {
    "os._exit(0) at import": "import os\nos._exit(0)\n",
    "exit hook": "import atexit, os\natexit.register(lambda: os._exit(0))\n" + WRONG,
    "equal to everything": "class Any:\n    def __eq__(self, other):\n        return True\n"
    "def shout(text):\n    return Any()\n",
    "runner patched": "import _pytest.runner\n_pytest.runner.call_and_report = None\n" + WRONG,
    "forked writer through /proc": "import os\nif os.fork() == 0:\n"
    "    open('/proc/self/fd/1', 'w').write('3 passed')\n" + WRONG,
    "report written": "open('../.dgm-report/report.xml', 'w').write('<testsuites/>')\n" + WRONG,
    "thread outliving the tests": "import threading\nthreading.Thread(target=print).start()\n"
    + RIGHT,
    "SystemExit at import": "raise SystemExit(0)\n",
}


@pytest.fixture(scope="module")
def bench(docker_runtime) -> PolyglotBenchmark:
    return PolyglotBenchmark(docker_runtime)


def test_an_honest_solution_resolves_and_a_wrong_one_does_not(bench, tmp_path):
    right = bench.grade(TASK, agent_patch(tmp_path / "r", bench, TASK, {"shout.py": RIGHT}))
    assert right.status is EvalStatus.RESOLVED, right.log
    assert "all 3 expected tests passed" in right.log
    wrong = bench.grade(TASK, agent_patch(tmp_path / "w", bench, TASK, {"shout.py": WRONG}))
    assert wrong.status is EvalStatus.UNRESOLVED and "failed:" in wrong.log


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_what_a_patch_adds_beside_the_solution_is_dropped(bench, tmp_path, name):
    files = {"shout.py": WRONG, **PLANTED[name]}
    graded = bench.grade(TASK, agent_patch(tmp_path, bench, TASK, files))
    assert graded.status is EvalStatus.UNRESOLVED, graded.log
    dropped = sorted(set(PLANTED[name]))
    assert f"dropped its edits of {', '.join(dropped)}" in graded.log
    # beside a right solution, the same additions change nothing: it still resolves
    files["shout.py"] = RIGHT
    honest = bench.grade(TASK, agent_patch(tmp_path / "right", bench, TASK, files))
    assert honest.status is EvalStatus.RESOLVED, honest.log


@pytest.mark.parametrize("name", sorted(CHEATING))
def test_a_solution_that_cheats_from_inside_the_tests_is_flagged(bench, tmp_path, name):
    graded = bench.grade(TASK, agent_patch(tmp_path, bench, TASK, {"shout.py": CHEATING[name]}))
    assert graded.status is EvalStatus.UNRESOLVED, graded.log
    assert graded.findings and "the solution check flags it" in graded.log


def quoted(patch: str, path: str, escaped: str) -> str:
    """The patch with `path`'s headers written as git writes quoted names."""
    return patch.replace(f"a/{path}", f'"a/{escaped}"').replace(f"b/{path}", f'"b/{escaped}"')


def test_test_edits_in_quoted_or_smuggled_headers_are_dropped(bench, tmp_path):
    # the test file rewritten to pass, beside a wrong solution
    cheat = {"shout.py": WRONG, "shout_test.py": "def test_nothing():\n    pass\n"}
    patch = agent_patch(tmp_path, bench, TASK, cheat)
    for disguised in (
        quoted(patch, "shout_test.py", "shout_test.py"),
        quoted(patch, "shout_test.py", "shout\\137test.py"),  # octal escape of "_"
    ):
        graded = bench.grade(TASK, disguised)
        assert graded.status is EvalStatus.UNRESOLVED, graded.log
        assert "dropped its edits of shout_test.py" in graded.log
    # a traditional hunk for the test file hidden after the solution's own hunk
    solution_only = agent_patch(tmp_path / "s", bench, TASK, {"shout.py": WRONG})
    tests_only = agent_patch(tmp_path / "t", bench, TASK, {"shout_test.py": cheat["shout_test.py"]})
    # (the agent never saw the tests: its patch creates the file)
    smuggled = solution_only + tests_only[tests_only.index("--- /dev/null") :]
    graded = bench.grade(TASK, smuggled)
    assert graded.status is EvalStatus.UNRESOLVED, graded.log
    assert "dropped its edits of shout_test.py" in graded.log


def test_a_solution_file_that_is_a_link_or_a_rename_of_the_tests_is_dropped(bench, tmp_path):
    link = (
        "diff --git a/shout.py b/shout.py\ndeleted file mode 100644\n"
        "--- a/shout.py\n+++ /dev/null\n"
        "@@ -1,2 +0,0 @@\n-def shout(text):\n-    pass\n"
        "diff --git a/shout.py b/shout.py\nnew file mode 120000\n--- /dev/null\n+++ b/shout.py\n"
        "@@ -0,0 +1 @@\n+shout_test.py\n\\ No newline at end of file\n"
    )
    graded = bench.grade(TASK, link)
    assert graded.status is EvalStatus.UNRESOLVED, graded.log
    rename = (
        "diff --git a/shout_test.py b/shout.py\nsimilarity index 100%\n"
        "rename from shout_test.py\nrename to shout.py\n"
    )
    graded = bench.grade(TASK, rename)
    assert graded.status is EvalStatus.UNRESOLVED and "dropped its edits of" in graded.log


def test_a_patch_git_would_read_otherwise_is_not_taken(bench):
    corrupt = "diff --git a/shout.py b/shout.py\n--- a/shout.py\n+++ b/shout.py\n@@ -1,9 +1,9 @@\n"
    graded = bench.grade(TASK, corrupt + "-def shout(text):\n+def shout(t):\n")
    assert graded.status is EvalStatus.UNRESOLVED
    assert "the patch cannot be taken: git apply:" in graded.log


def test_a_reference_whose_start_has_no_final_newline_resolves(docker_client, base_image, tmp_path):
    # patches are made by git: a stub without a final newline needs "\ No newline"
    checkout = shutil.copytree(BUILTIN, tmp_path / "checkout")
    (checkout / SHOUT / "shout.py").write_text("def shout(text):\n    pass")
    copy = PolyglotBenchmark(lambda s: DockerSandbox(base_image, s, client=docker_client), checkout)
    reference = copy.reference_patch(TASK)
    assert "\\ No newline at end of file" in reference
    graded = copy.grade(TASK, reference)
    assert graded.status is EvalStatus.RESOLVED, graded.log


def test_the_expected_tests_come_from_the_pristine_files():
    assert RUNNERS["python"].expected(BUILTIN / SHOUT, ["shout_test.py"]) == {
        "shout_test::test_word",
        "shout_test::test_sentence",
        "shout_test::test_empty",
    }
