"""Reading per-test reports: every expected test reported passed, nothing failed, the run
complete; never an exit code. Reports are made here by hand, as a solution might forge them."""

from __future__ import annotations

import json
import shutil
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
        "#[test]\n/// a doc comment between\nfn documented() {}\n"
    )
    assert RUNNERS["rust"].expected(tmp_path, ["t.rs"]) == {"plain", "nested", "documented"}


def test_java_expects_every_test_method_disabled_or_not(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "LeapTest.java").write_text(
        "package year;\n\nclass LeapTest {\n    @Test\n    public void first() {}\n\n"
        '    @Disabled("Remove to run test")\n    @Test\n    void second() {}\n\n'
        '    @Test\n    @DisplayName("a (name)")\n    public void third() {}\n\n'
        "    @ParameterizedTest\n    @ValueSource(ints = {1, 2})\n    void fourth(int x) {}\n\n"
        "    private void helper() {}\n}\n"
    )
    java = RUNNERS["java"]
    expected = java.expected(tmp_path, ["src/LeapTest.java"])
    assert expected == {f"year.LeapTest::{m}" for m in ("first", "second", "third", "fourth")}
    case = '<testcase classname="year.LeapTest{}" name="{}"/>'
    runs = [case.format("", f"{m}()") for m in ("first", "second", "third")]
    runs += [case.format("$Inner", f"fourth(int)[{i}]") for i in (1, 2)]  # a nested class's
    report(tmp_path / "r", "TEST-junit-jupiter.xml", junit(*runs))
    assert java.verdict(expected, tmp_path / "r").resolved
    failing = '<testcase classname="year.LeapTest" name="fourth(int)[3]"><failure/></testcase>'
    verdict = java.verdict(
        expected, report(tmp_path / "s", "TEST-junit-vintage.xml", junit(failing))
    )
    assert not verdict.resolved  # another engine's report counts too
    report(tmp_path / "s", "TEST-junit-jupiter.xml", junit(*runs))
    assert not java.verdict(expected, tmp_path / "s").resolved
    skipped = '<testcase classname="year.LeapTest" name="second()"><skipped/></testcase>'
    partial = junit(case.format("", "first()"), skipped, *runs[2:])
    assert not java.verdict(
        expected, report(tmp_path / "t", "TEST-junit-jupiter.xml", partial)
    ).resolved
    assert not java.verdict(expected, tmp_path / "nothing").resolved  # it never compiled


def test_java_and_rust_exercises_needing_what_the_image_lacks_are_named(tmp_path):
    java, rust = RUNNERS["java"], RUNNERS["rust"]
    gradle = (
        'dependencies {\n    testImplementation platform("org.junit:junit-bom:5.10.0")\n'
        '    testImplementation "org.junit.jupiter:junit-jupiter"\n'
        '    testImplementation "org.assertj:assertj-core:3.25.1"\n'
        '    implementation "org.json:json:20190722"\n}\n'
    )
    (tmp_path / "build.gradle").write_text(gradle)
    assert java.unavailable(tmp_path) is None
    tests = tmp_path / "src" / "test" / "java"
    tests.mkdir(parents=True)
    (tests / "MazeTest.java").write_text(
        "class MazeTest { void t() { assertThat(m).hasDimensions(2, 3); } }\n"
    )
    assert "use AssertJ's hasDimensions, newer than Debian's" in java.unavailable(tmp_path)
    (tests / "MazeTest.java").write_text(
        "class MazeTest { void t() { assertThat(m).hasSize(2); } }\n"
    )
    (tmp_path / "build.gradle").write_text(
        gradle + 'dependencies { implementation "io.x:rx:2.2" }\n'
    )
    assert "needs io.x:rx, which Debian does not package" in java.unavailable(tmp_path)
    (tmp_path / "Cargo.toml").write_text(
        '[package]\nname = "x"\n[dependencies]\nrand = "0.8"\nmine = { path = "mine" }\n'
    )
    assert rust.unavailable(tmp_path) is None
    (tmp_path / "Cargo.toml").write_text('[dev-dependencies]\nrand = "0.8"\nserde = "1"\n')
    assert "needs the crates serde 1, which" in rust.unavailable(tmp_path)
    (tmp_path / "Cargo.toml").write_text('[dependencies]\nrand = "0.3.12"\ntime = "0.3"\n')
    assert "needs the crates rand 0.3.12, which" in rust.unavailable(tmp_path)  # not 0.8


def test_a_rust_reference_brings_its_manifest_and_may_need_what_the_image_lacks(tmp_path):
    from benchmarks.polyglot import PolyglotBenchmark

    fixture = Path(__file__).parent / "fixtures" / "polyglot" / "rust"
    shutil.copytree(fixture, tmp_path / "rust")
    leap = tmp_path / "rust" / "exercises" / "practice" / "leap"
    bench = PolyglotBenchmark(lambda s: None, tmp_path, toolchains=lambda: "toolchains")
    assert bench.reference_unavailable("rust/leap") is None
    assert "Cargo.toml" not in bench.reference_patch("rust/leap")
    manifest = (leap / "Cargo.toml").read_text() + 'regex = "0.2"\n'
    (leap / ".meta" / "Cargo-example.toml").write_text(manifest)
    assert '+regex = "0.2"' in bench.reference_patch("rust/leap")
    assert "needs the crates regex 0.2, which" in bench.reference_unavailable("rust/leap")
    assert bench.tasks() == ["rust/leap"]  # the exercise itself is still graded


def test_a_java_reference_of_several_classes_folds_into_the_solution_file(tmp_path):
    from benchmarks.polyglot import _java_references

    reference = tmp_path / ".meta" / "src" / "reference" / "java"
    reference.mkdir(parents=True)
    (reference / "Card.java").write_text("import java.util.List;\n\npublic final class Card {}\n")
    (reference / "Poker.java").write_text(
        "import java.util.List;\nimport java.util.Map;\n\npublic class Poker {\n"
        "    public class Inner {}\n}\n"
    )
    (reference / "Suit.java").write_text("public enum Suit { HEARTS }\n")
    given = tmp_path / "src" / "main" / "java"
    given.mkdir(parents=True)
    (given / "Suit.java").write_text("public enum Suit { HEARTS }\n")  # the exercise gives it
    (given / "Poker.java").write_text("class Poker {}\n")
    examples = [f".meta/src/reference/java/{n}.java" for n in ("Card", "Poker", "Suit")]
    [(name, text)] = _java_references(tmp_path, ["src/main/java/Poker.java"], examples)
    assert name == "src/main/java/Poker.java"
    assert text == (
        "import java.util.List;\nimport java.util.Map;\n\npublic class Poker {\n"
        "    public class Inner {}\n}\n\nfinal class Card {}\n"
    )


def test_cpp_expects_the_tests_compiled_with_every_test_on_and_no_benchmark(tmp_path):
    (tmp_path / "x_test.cpp").write_text(
        '#ifdef EXERCISM_TEST_SUITE\n#include <catch2/catch.hpp>\n#else\n#include "catch.hpp"\n'
        '#endif\nTEST_CASE("first") {}\n#if defined(EXERCISM_RUN_ALL_TESTS)\n'
        'TEST_CASE(\n    // clang-format off\n    "second",\n'
        '    // clang-format on\n    "[id]") {}\n'
        '#ifndef M_PI\n#define M_PI 3.14\n#endif\nTEST_CASE("third") {}\n#endif\n'
        '#if defined(EXERCISM_INCLUDE_BENCHMARK)\nTEST_CASE("benchmark") {}\n#else\n'
        'TEST_CASE("no benchmark") {}\n#endif\n'
    )
    assert RUNNERS["cpp"].expected(tmp_path, ["x_test.cpp"]) == {
        "first", "second", "third", "no benchmark"
    }  # fmt: skip
