"""Polyglot's other languages (Go, Rust, JavaScript, C++, Java) in the toolchain image built
offline from Debian's packages, the npm registry and PyPI (Go): each fixture needs what the
real exercises need (Go's `slices`, a crate from Debian's registry, JUnit 5 and AssertJ)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from archive.records import EvalStatus
from benchmarks.patches import make
from benchmarks.polyglot import TOOLCHAINS, PolyglotBenchmark
from sandbox.docker_sandbox import DockerSandbox
from sandbox.images import ensure_base_image
from tests.conftest import run_dgm

CHECKOUT = Path(__file__).parent / "fixtures" / "polyglot"
# right for the first test only: wrong once the tests Exercism skips by default run too
ALMOST = {
    "javascript/leap": ("leap.js", "export const isLeap = (year) => year % 4 === 0;\n"),
    "rust/leap": ("src/lib.rs", "pub fn is_leap_year(year: u64) -> bool {\n    year % 4 == 0\n}\n"),
    "java/leap": (
        "src/main/java/Leap.java",
        "class Leap {\n    boolean isLeapYear(int year) {\n"
        "        return year % 4 == 0;\n    }\n}\n",
    ),
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


def test_every_language_grades_with_its_toolchain(bench):
    assert bench.languages == ("cpp", "go", "java", "javascript", "rust")
    assert bench.unavailable == {}
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
    verified = json.loads(result.stdout)
    assert [(r["task"], r["ok"]) for r in verified["tasks"]] == [
        (task, True) for task in bench.tasks()
    ]
    assert verified["unavailable"] == {}
    assert verified["languages"] == [
        {"language": lang, "exercises": 1, "reference_resolves": 1, "stub_does_not": 1,
         "starts_passing": 0, "unavailable": 0, "reference_unavailable": 0, "wrong": 0}
        for lang in bench.languages
    ]  # fmt: skip


def test_verify_names_what_cannot_be_graded_and_what_starts_passing(tmp_path):
    """A Java exercise needing a library Debian lacks is unavailable by name, so is a Rust
    reference needing a crate the image lacks; a refactoring exercise whose starting code
    passes is fine; any other whose stub passes is wrong."""
    practice = tmp_path / "go" / "exercises" / "practice"
    for name in ("refactor", "broken"):
        shutil.copytree(CHECKOUT / "go" / "exercises" / "practice" / "leap", practice / name)
        shutil.copy(practice / name / ".meta" / "example.go", practice / name / "leap.go")
    (practice / "refactor" / ".docs" / "instructions.md").write_text("# Refactor this code\n")
    java = tmp_path / "java" / "exercises" / "practice" / "rx"
    shutil.copytree(CHECKOUT / "java" / "exercises" / "practice" / "leap", java)
    with (java / "build.gradle").open("a") as gradle:
        gradle.write('dependencies {\n    implementation "io.reactivex.rxjava2:rxjava:2.2.12"\n}\n')
    rust = tmp_path / "rust" / "exercises" / "practice" / "regex"
    shutil.copytree(CHECKOUT / "rust" / "exercises" / "practice" / "leap", rust)
    manifest = (rust / "Cargo.toml").read_text() + '\n[dependencies]\nregex = "0.2"\n'
    (rust / ".meta" / "Cargo-example.toml").write_text(manifest)
    result = run_dgm("bench", "verify", "--benchmark", "polyglot", "--path", str(tmp_path),
                     "--backend", "docker")  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert ["go/broken", "resolved", "resolved", "WRONG"] in lines, result.stdout
    assert ["go/refactor", "resolved", "resolved", "ok,", "starts", "passing"] in lines
    assert ["rust/regex", "-", "empty", "ok,", "reference", "unavailable"] in lines
    assert ["go", "2", "2", "0", "1", "0", "0", "1"] in lines  # the summary, per language
    assert ["java", "1", "0", "0", "0", "1", "0", "0"] in lines
    assert ["rust", "1", "0", "1", "0", "0", "1", "0"] in lines
    needs = "java/rx is unavailable: its build.gradle needs io.reactivex.rxjava2:rxjava"
    for text in (result.stdout, result.stderr):
        assert needs in " ".join(text.split())  # the console wraps long lines
    crate = "rust/regex: its reference is unavailable: it needs the crates regex 0.2, which"
    assert crate in " ".join(result.stdout.split())


# Java solutions that cheat from inside the test process, the solution check switched off:
# the launcher's per-test report still says what ran
ALMOST_JAVA = ALMOST["java/leap"][1].removesuffix("}\n")
FORGED = "".join(
    f'<testcase classname=\\"LeapTest\\" name=\\"{name}()\\"/>'
    for name in ("aYearNotDivisibleByFourIsCommon", "aCenturyNotDivisibleByFourHundredIsCommon",
                 "aYearDivisibleByFourHundredIsLeap", "aYearDivisibleByFourButNotByAHundredIsLeap")
)  # every test of the fixture, passed  # fmt: skip
JAVA_CHEATS = {
    "exits before any report": "class Leap {\n    static { System.exit(0); }\n"
    "    boolean isLeapYear(int year) { return true; }\n}\n",
    "forges a report of its own": ALMOST_JAVA
    + "    static {\n        try {\n            java.nio.file.Files.writeString(\n"
    '                java.nio.file.Path.of("../.dgm-report/TEST-forged.xml"),\n'
    f'                "<testsuite>{FORGED}</testsuite>");\n'
    "        } catch (java.io.IOException e) {\n            throw new RuntimeException(e);\n"
    "        }\n    }\n}\n",
}


@pytest.mark.parametrize("cheat", sorted(JAVA_CHEATS))
def test_java_cheats_fail_on_the_report_even_unchecked(bench, monkeypatch, cheat):
    monkeypatch.setattr("benchmarks.polyglot.check_solution", lambda language, files: [])
    name = "src/main/java/Leap.java"
    start = (CHECKOUT / "java" / "exercises" / "practice" / "leap" / name).read_text()
    outcome = bench.grade("java/leap", make(name, start, JAVA_CHEATS[cheat]))
    assert outcome.status is EvalStatus.UNRESOLVED, outcome.log
