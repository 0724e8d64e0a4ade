"""Reading per-test reports: every expected test reported passed, nothing failed, the run
complete; never an exit code. Reports are made here by hand, as a solution might forge them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.polyglot_runners import RUNNERS


def report(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder


def junit(*cases: str) -> str:
    return f"<testsuites><testsuite>{''.join(cases)}</testsuite></testsuites>"


PASS = '<testcase classname="shout_test" name="test_{}"/>'
FAIL = '<testcase classname="shout_test" name="test_{}"><failure message="no"/></testcase>'
SKIP = '<testcase classname="shout_test" name="test_{}"><skipped/></testcase>'
EXPECTED = {"shout_test::test_a", "shout_test::test_b"}


@pytest.mark.parametrize(
    ("cases", "resolved"),
    [
        ((PASS.format("a"), PASS.format("b")), True),
        ((PASS.format("a"), FAIL.format("b")), False),
        ((PASS.format("a"), SKIP.format("b")), False),  # a skip is no pass
        ((PASS.format("a"),), False),  # a test that never reported (the process left early)
        ((PASS.format("a"), PASS.format("b"), FAIL.format("extra")), False),
    ],
)
def test_python_reads_the_junit_report(tmp_path, cases, resolved):
    verdict = RUNNERS["python"].verdict(EXPECTED, report(tmp_path, "report.xml", junit(*cases)))
    assert verdict.resolved is resolved, verdict


def test_an_unreadable_or_missing_report_is_no_pass(tmp_path):
    python = RUNNERS["python"]
    assert not python.verdict(EXPECTED, tmp_path).resolved  # never written
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><testsuites>&b;</testsuites>'
    )
    verdict = python.verdict(EXPECTED, report(tmp_path, "report.xml", bomb))
    assert not verdict.resolved and "did not run to the end" in verdict.summary


def test_javascript_counts_the_tests_that_run_and_ignores_the_spec_s_own_skips(tmp_path):
    spec = "test('a', () => {});\nxtest('b', () => {});\nxit('c', () => {});\n"
    (tmp_path / "x.spec.js").write_text(spec + "test.skip('d', () => {});\n")
    js = RUNNERS["javascript"]
    expected = js.expected(tmp_path, ["x.spec.js"])
    assert len(expected) == 2  # `xit` and `test.skip` stay skipped, as in Aider's benchmark

    def result(*statuses: str) -> Path:
        data = {"testResults": [{"assertionResults": [
            {"fullName": str(i), "status": status} for i, status in enumerate(statuses)
        ]}]}  # fmt: skip
        return report(tmp_path / "r", "report.json", json.dumps(data))

    assert js.verdict(expected, result("passed", "passed", "pending", "pending")).resolved
    assert not js.verdict(expected, result("passed", "failed", "pending", "pending")).resolved
    assert not js.verdict(expected, result("passed", "pending", "pending", "pending")).resolved


def test_go_needs_every_test_passed_and_the_package_too(tmp_path):
    (tmp_path / "x_test.go").write_text(
        "func TestA(t *testing.T) {}\nfunc TestB(t *testing.T) {}\n"
    )
    go = RUNNERS["go"]
    expected = go.expected(tmp_path, ["x_test.go"])
    assert expected == {"TestA", "TestB"}

    def events(*pairs: tuple[str, str]) -> Path:
        lines = [json.dumps({"Action": a, "Test": t} if t else {"Action": a}) for t, a in pairs]
        return report(tmp_path / "r", "report.json", "\n".join(["# build output", *lines]))

    assert go.verdict(expected, events(("TestA", "pass"), ("TestB", "pass"), ("", "pass"))).resolved
    failed_sub = events(("TestA", "pass"), ("TestB/x", "fail"), ("TestB", "pass"), ("", "pass"))
    assert not go.verdict(expected, failed_sub).resolved
    assert not go.verdict(expected, events(("TestA", "pass"), ("TestB", "pass"))).resolved


def test_rust_believes_a_failure_over_a_printed_ok(tmp_path):
    (tmp_path / "t.rs").write_text("#[test]\nfn a() {}\n#[test]\n#[ignore]\nfn b() {}\n")
    rust = RUNNERS["rust"]
    expected = rust.expected(tmp_path, ["t.rs"])
    assert expected == {"a", "b"}
    good = "test a ... ok\ntest b ... ok\n\ntest result: ok. 2 passed\n"
    assert rust.verdict(expected, report(tmp_path / "r", "report.txt", good)).resolved
    forged = "test b ... ok\ntest a ... ok\ntest b ... FAILED\n\ntest result: FAILED. 1 passed\n"
    assert not rust.verdict(expected, report(tmp_path / "s", "report.txt", forged)).resolved


def test_cpp_sections_and_slashes_count_for_their_case(tmp_path):
    (tmp_path / "x_test.cpp").write_text(
        'TEST_CASE("push/pop at the end") {}\nTEST_CASE("says \\"hi\\"") {}\n'
    )
    cpp = RUNNERS["cpp"]
    expected = cpp.expected(tmp_path, ["x_test.cpp"])
    assert expected == {"push/pop at the end", 'says "hi"'}
    case = '<testcase classname="x.global" name="{}"/>'
    hi = case.format("says &quot;hi&quot;")
    sections = junit(case.format("push/pop at the end/a section"), hi)
    assert cpp.verdict(expected, report(tmp_path / "r", "report.xml", sections)).resolved
    failing = junit(
        hi,
        '<testcase classname="x.global" name="push/pop at the end/b"><failure/></testcase>',
    )
    assert not cpp.verdict(expected, report(tmp_path / "s", "report.xml", failing)).resolved


def test_a_header_only_reference_goes_to_the_header():
    from benchmarks.polyglot import _references

    solution = ["circular_buffer.cpp", "circular_buffer.h"]
    assert _references(solution, [".meta/example.h"]) == [("circular_buffer.h", ".meta/example.h")]
    both = [".meta/example.cpp", ".meta/example.h"]
    assert _references(solution, both) == list(zip(solution, both, strict=True))
    assert _references(["src/lib.rs"], [".meta/example.rs"]) == [("src/lib.rs", ".meta/example.rs")]


def test_rust_expects_no_test_that_needs_a_feature(tmp_path):
    (tmp_path / "t.rs").write_text(
        "#[test]\nfn plain() {}\n"
        '#[test]\n#[ignore]\n#[cfg(feature = "big")]\nfn gated() {}\n'
        '#[cfg(feature = "io")]\nmod io {\n    #[test]\n    fn inside() { if true {} }\n}\n'
        "mod open {\n    #[test]\n    pub fn nested() {}\n}\n"
    )
    assert RUNNERS["rust"].expected(tmp_path, ["t.rs"]) == {"plain", "nested"}
