"""Polyglot's other languages (Go, Rust, JavaScript, C++) in the toolchain image built offline
from Debian's packages and the npm registry; Java reported unavailable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archive.records import EvalStatus
from benchmarks.patches import make
from benchmarks.polyglot import TOOLCHAINS, PolyglotBenchmark
from sandbox.docker_sandbox import DockerSandbox
from sandbox.images import ensure_base_image
from tests.conftest import run_dgm
from tests.test_cli import fails_cleanly

CHECKOUT = Path(__file__).parent / "fixtures" / "polyglot"
# right for the first test only: wrong once the tests Exercism skips by default run too
ALMOST = {
    "javascript/leap": ("leap.js", "export const isLeap = (year) => year % 4 === 0;\n"),
    "rust/leap": ("src/lib.rs", "pub fn is_leap_year(year: u64) -> bool {\n    year % 4 == 0\n}\n"),
    "cpp/leap": (
        "leap.cpp",
        '#include "leap.h"\n\nnamespace leap {\n\nbool is_leap_year(int year) {\n'
        "    return year % 4 == 0 && year % 100 != 0;\n}\n\n}  // namespace leap\n",
    ),
}


@pytest.fixture(scope="module")
def bench(docker_client, base_image) -> PolyglotBenchmark:
    return PolyglotBenchmark(
        lambda s: DockerSandbox(base_image, s, client=docker_client),
        CHECKOUT,
        toolchains=lambda: ensure_base_image(docker_client, TOOLCHAINS),
    )


def test_every_language_with_a_toolchain_grades_and_java_is_unavailable(bench):
    assert bench.languages == ("cpp", "go", "javascript", "rust")
    assert list(bench.unavailable) == ["java"] and "Maven Central" in bench.unavailable["java"]
    for task in bench.tasks():
        reference = bench.grade(task, bench.reference_patch(task))
        assert reference.status is EvalStatus.RESOLVED, (task, reference.log)
        baseline = bench.grade(task, "")
        assert baseline.status is EvalStatus.EMPTY, (task, baseline.log)


@pytest.mark.parametrize("task", sorted(ALMOST))
def test_the_tests_exercism_skips_by_default_are_run(bench, task):
    name, text = ALMOST[task]
    start = (CHECKOUT / task.replace("/", "/exercises/practice/") / name).read_text()
    outcome = bench.grade(task, make(name, start, text))
    assert outcome.status is EvalStatus.UNRESOLVED, outcome.log


def test_verify_from_the_command_line(bench):
    result = run_dgm(
        "bench", "verify", "--benchmark", "polyglot", "--path", str(CHECKOUT), "--json",
        "--backend", "docker",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [(r["task"], r["ok"]) for r in json.loads(result.stdout)] == [
        (task, True) for task in bench.tasks()
    ]
    assert "java is unavailable: Exercism's Gradle build" in result.stderr
    java = run_dgm("bench", "verify", "--benchmark", "polyglot", "--path", str(CHECKOUT),
                   "--language", "java")  # fmt: skip
    fails_cleanly(java, "java is unavailable: Exercism's Gradle build fetches JUnit 5")
