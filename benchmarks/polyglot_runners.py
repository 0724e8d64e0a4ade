"""How each Polyglot language's tests run, and what counts as passing them.

A result is read from the test runner's per-test report, never from its exit code: every test
the pristine test files define must be reported, and reported passed, and nothing may fail.
The tests run isolated from the exercise folder's own configuration and from modules that
would shadow the runner (Python: `-I`, `--noconftest`, `-c /dev/null`, no plugin autoload);
the report is written outside the exercise folder and taken out of the frozen sandbox. The
expected tests are read on the host from the pristine test files, so the code under test has
no say in what is expected.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from defusedxml import DefusedXmlException, ElementTree

# crates the toolchain image has from Debian's registry (bookworm's versions): what the
# exercises' tests and references depend on, where Debian has a version they accept
CRATES = {"anyhow": "1.0.69", "rand": "0.8.5", "thiserror": "1.0.38", "time": "0.3.9"}
GO_CACHE = "/opt/go-cache"  # the toolchain image's Go build cache, with the standard library
REPORT = ".dgm-report"  # beside the exercise folder, under the grading sandbox's work directory
_PARAMETERS = re.compile(r"\[.*\]$")


@dataclass(frozen=True)
class Verdict:
    resolved: bool
    summary: str


class Runner(Protocol):
    def command(self, exercise: str, tests: list[str]) -> str:
        """The shell command run in the exercise folder; it writes its report to ../REPORT."""

    def expected(self, folder: Path, tests: list[str]) -> set[str]:
        """The names of the tests the pristine test files define (empty: not knowable)."""

    def verdict(self, expected: set[str], report: Path) -> Verdict:
        """What the report (a folder taken out of the sandbox) says."""

    def unavailable(self, folder: Path) -> str | None:
        """Why the pristine exercise cannot be graded here (a dependency the toolchain image
        lacks), or None."""


class _Standalone:
    def unavailable(self, folder: Path) -> str | None:
        return None  # the exercises of this language need nothing beyond the toolchain


def judge(expected: set[str], passed: set[str], failed: set[str], ran: bool) -> Verdict:
    """Resolved when the run completed, nothing failed, and every expected test passed (at
    least one test when the expected ones are not knowable)."""
    if not ran:
        return Verdict(False, "the tests did not run to the end (no complete report)")
    if failed:
        return Verdict(False, f"failed: {', '.join(sorted(failed)[:10])}")
    if missing := sorted(expected - passed):
        return Verdict(False, f"not reported passed: {', '.join(missing[:10])}")
    if not passed:
        return Verdict(False, "no test was reported passed")
    return Verdict(True, f"all {len(expected) or len(passed)} expected tests passed")


def _junit(report: Path) -> tuple[set[str], set[str], bool]:
    """(passed, failed) test names of a JUnit XML report, and whether it was there."""
    if not report.is_file():
        return set(), set(), False
    try:
        root = ElementTree.parse(report).getroot()
    except (ElementTree.ParseError, DefusedXmlException):  # unreadable: no report at all
        return set(), set(), False
    passed, failed = set(), set()
    for case in root.iter("testcase"):
        name = _PARAMETERS.sub("", case.get("name", ""))
        key = f"{case.get('classname', '')}::{name}"
        bad = any(child.tag in ("failure", "error", "skipped") for child in case)
        (failed if bad else passed).add(key)
    return passed - failed, failed, True


class Python(_Standalone):
    def command(self, exercise: str, tests: list[str]) -> str:
        files = " ".join(_quote(t) for t in tests)
        return (
            f"mkdir -p ../{REPORT} && PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -I -m pytest"
            f" -p no:cacheprovider --noconftest -c /dev/null --rootdir=. -q"
            f" --junit-xml=../{REPORT}/report.xml {files}"
        )

    def expected(self, folder: Path, tests: list[str]) -> set[str]:
        names = set()
        for test in tests:
            module = ".".join(PurePosixPath(test).with_suffix("").parts)
            tree = ast.parse((folder / test).read_text())
            classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
            for node in tree.body:
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                    names.add(f"{module}::{node.name}")
                elif isinstance(node, ast.ClassDef) and _collected(node, classes):
                    for method in _methods(node, classes):
                        names.add(f"{module}.{node.name}::{method}")
        return names

    def verdict(self, expected: set[str], report: Path) -> Verdict:
        return judge(expected, *_junit(report / "report.xml"))


def _collected(cls: ast.ClassDef, classes: dict[str, ast.ClassDef]) -> bool:
    """Does pytest collect this class: named Test*, or a unittest.TestCase (in this module)?"""
    if cls.name.startswith("Test"):
        return True
    for base in cls.bases:
        name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
        if name == "TestCase" or (name in classes and _collected(classes[name], classes)):
            return True
    return False


def _methods(cls: ast.ClassDef, classes: dict[str, ast.ClassDef]) -> set[str]:
    """test* methods of the class, with those it inherits from classes of the module."""
    found = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in classes:
            found |= _methods(classes[base.id], classes)
    return {name for name in found if name.startswith("test")}


class Go(_Standalone):
    _TEST = re.compile(r"^func\s+(Test\w*)\s*\(\s*\w+\s+\*testing\.T\s*\)", re.M)

    def command(self, exercise: str, tests: list[str]) -> str:
        # a copy: Go writes to its cache, and the image is read-only
        return (
            f"mkdir -p ../{REPORT} && cp -R {GO_CACHE} ../.dgm-go-cache"
            ' && GOCACHE="$(dirname "$PWD")/.dgm-go-cache"'
            f" go test -json ./... > ../{REPORT}/report.json"
        )

    def expected(self, folder: Path, tests: list[str]) -> set[str]:
        return {m for test in tests for m in self._TEST.findall((folder / test).read_text())}

    def verdict(self, expected: set[str], report: Path) -> Verdict:
        path = report / "report.json"
        if not path.is_file():
            return judge(expected, set(), set(), False)
        outcome: dict[str, str] = {}
        package_passed = failed = False
        for line in path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # build output
            action, test = event.get("Action"), event.get("Test")
            failed |= action == "fail"
            if action in ("pass", "fail", "skip"):
                if test:
                    outcome[test] = action
                else:
                    package_passed |= action == "pass"
        top = {t: a for t, a in outcome.items() if "/" not in t}
        passed = {t for t, a in top.items() if a == "pass"}
        bad = {t for t, a in top.items() if a != "pass"} | ({"(package)"} if failed else set())
        return judge(expected, passed, bad, package_passed)


class Rust:
    # an item with its attributes (and doc comments): `#[test] #[ignore] fn name`,
    # `#[cfg(feature = "io")] mod x`
    _ITEM = re.compile(
        r"((?:(?:#\[[^\]]*\]|///[^\n]*)\s*)+)(?:pub(?:\([^)]*\))?\s+)?(mod|fn)\s+(\w+)"
    )
    _RESULT = re.compile(r"^test (\S+) \.\.\. (ok|FAILED|ignored)$", re.M)

    def command(self, exercise: str, tests: list[str]) -> str:
        return (
            f"mkdir -p ../{REPORT} && cargo test --offline -- --include-ignored"
            f" > ../{REPORT}/report.txt 2>&1; status=$?; cat ../{REPORT}/report.txt; exit $status"
        )

    def expected(self, folder: Path, tests: list[str]) -> set[str]:
        """The `#[test]` functions compiled without features (Exercism puts optional tests
        behind `#[cfg(feature = ...)]`, on the function or a module around it)."""
        names = set()
        for test in tests:
            text = (folder / test).read_text()
            for item in reversed(list(self._ITEM.finditer(text))):
                if item[2] == "mod" and _behind_feature(item[1]):
                    text = text[: item.start()] + text[_block_end(text, item.end()) :]
            names |= {
                item[3] for item in self._ITEM.finditer(text)
                if item[2] == "fn" and "#[test]" in item[1] and not _behind_feature(item[1])
            }  # fmt: skip
        return names

    def verdict(self, expected: set[str], report: Path) -> Verdict:
        path = report / "report.txt"
        if not path.is_file():
            return judge(expected, set(), set(), False)
        text = path.read_text(errors="replace")
        passed, failed = set(), set()
        for name, result in self._RESULT.findall(text):
            (passed if result == "ok" else failed).add(name.rsplit("::", 1)[-1])
        ran = "test result: " in text
        if "test result: FAILED" in text:
            failed.add("(test result)")
        return judge(expected, passed - failed, failed, ran)

    def unavailable(self, folder: Path) -> str | None:
        return missing_crates(folder / "Cargo.toml")


def missing_crates(path: Path) -> str | None:
    """What of a Cargo manifest's dependencies the toolchain image lacks, or None."""
    try:
        manifest = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None  # cargo reports it when the tests run
    tables = [manifest, *manifest.get("target", {}).values()]
    wanted = {
        name: spec if isinstance(spec, str) else spec.get("version", "*")
        for table in tables for kind in _CARGO_KINDS
        for name, spec in table.get(kind, {}).items()
        if not (isinstance(spec, dict) and "path" in spec)
    }  # fmt: skip
    missing = [
        f"{name} {version}" for name, version in sorted(wanted.items())
        if name not in CRATES or not _accepts(version, CRATES[name])
    ]  # fmt: skip
    if missing:
        return f"it needs the crates {', '.join(missing)}, which the toolchain image lacks"
    return None


def _accepts(requirement: str, version: str) -> bool:
    """Does a plain Cargo requirement (`0.8`, `^1.0.2`, `*`) accept the version? Anything else
    (ranges, `~`, `=`) is taken as not: the exercises use plain ones."""
    if requirement.strip() == "*":
        return True
    if not re.fullmatch(r"\^?\d+(\.\d+){0,2}", requirement.strip()):
        return False
    wanted = [int(n) for n in requirement.strip().lstrip("^").split(".")]
    have = [int(n) for n in version.split(".")]
    # caret: the same leftmost non-zero part, and no lower
    significant = next((i for i, n in enumerate(wanted) if n), len(wanted) - 1)
    return have[: significant + 1] == wanted[: significant + 1] and have >= wanted


_CARGO_KINDS = ("dependencies", "dev-dependencies", "build-dependencies")


def _behind_feature(attributes: str) -> bool:
    return bool(re.search(r"#\[cfg\((?:all\()?feature\b", attributes))


def _block_end(text: str, start: int) -> int:
    """Where the `{ ... }` block that opens after `start` closes (its braces counted)."""
    depth, pos = 0, text.find("{", start)
    while 0 <= pos < len(text):
        depth += {"{": 1, "}": -1}.get(text[pos], 0)
        if depth == 0:
            return pos + 1
        pos += 1
    return len(text)


class JavaScript(_Standalone):
    # tests that run once `xtest` is turned into `test`; `xit` and `test.skip` stay skipped,
    # as in Aider's benchmark, and the solution has no say in that (a pristine spec's choice)
    _TEST = re.compile(r"(?<![\w.])(?:x?test|it)\s*\(")

    def command(self, exercise: str, tests: list[str]) -> str:
        # Exercism skips all but the first test unless told otherwise, as Aider's benchmark does
        return (
            f"mkdir -p ../{REPORT} && ln -sfn /opt/npm/node_modules node_modules"
            " && sed -i 's/\\bxtest(/test(/g' *.spec.js"
            f" && npm test -- --json --outputFile=../{REPORT}/report.json"
        )

    def expected(self, folder: Path, tests: list[str]) -> set[str]:
        count = sum(len(self._TEST.findall((folder / t).read_text())) for t in tests)
        return {f"#{i}" for i in range(1, count + 1)}  # jest reports titles; counted here

    def verdict(self, expected: set[str], report: Path) -> Verdict:
        try:
            data = json.loads((report / "report.json").read_text())
            results = [a for r in data["testResults"] for a in r["assertionResults"]]
        except (OSError, ValueError, KeyError, TypeError):
            return judge(expected, set(), set(), False)
        ran = [a for a in results if a.get("status") not in _SKIPPED]
        passed = {f"#{i}" for i, a in enumerate(ran, 1) if a.get("status") == "passed"}
        failed = {a.get("fullName", "?") for a in ran if a.get("status") != "passed"}
        if data.get("numFailedTestSuites") or data.get("numRuntimeErrorTestSuites"):
            failed.add("(a test suite)")
        return judge(expected, passed, failed, True)


_SKIPPED = ("pending", "skipped", "todo", "disabled")  # jest's names for a test not run


class Cpp(_Standalone):
    _TEST = re.compile(r'\bTEST_CASE\s*\(\s*"((?:[^"\\]|\\.)*)"')

    def command(self, exercise: str, tests: list[str]) -> str:
        # the build runs the tests once (Exercism's CMakeLists); again for a JUnit report
        return (
            f"mkdir -p ../{REPORT} build && cd build && cmake -DEXERCISM_RUN_ALL_TESTS=1 .."
            f" && make && ./{_quote(exercise)} -r junit -o ../../{REPORT}/report.xml"
        )

    def expected(self, folder: Path, tests: list[str]) -> set[str]:
        return {
            name.replace('\\"', '"').replace("\\\\", "\\")
            for test in tests if test.endswith(".cpp")
            for name in self._TEST.findall(_compiled((folder / test).read_text(), _CPP_DEFINED))
        }  # fmt: skip

    def verdict(self, expected: set[str], report: Path) -> Verdict:
        passed, failed, ran = _junit(report / "report.xml")

        def cases(keys: set[str]) -> set[str]:
            return {_case(key.split("::", 1)[-1], expected) for key in keys}

        return judge(expected, cases(passed), cases(failed), ran)


_CPP_DEFINED = {"EXERCISM_RUN_ALL_TESTS"}  # what the runner defines (the benchmark: not)
_CONDITION = re.compile(r"^\s*#\s*(ifdef|ifndef|if|else|elif|endif)\b\s*(.*)$")


def _compiled(text: str, defined: set[str]) -> str:
    """The lines `#ifdef X`, `#ifndef X` and `#if defined(X)` keep, given the macros defined
    (other conditions are taken as true), less whole-line `//` comments (one may sit between
    `TEST_CASE(` and its name)."""
    kept, stack = [], [True]  # stack: whether each open block's lines are kept
    for line in text.splitlines():
        if match := _CONDITION.match(line):
            word, rest = match[1], match[2]
            name = re.fullmatch(r"(?:defined\s*\(?\s*)?(\w+)\s*\)?\s*", rest)
            if word in ("ifdef", "ifndef", "if"):
                known = name is not None and (word != "if" or rest.startswith("defined"))
                value = (name[1] in defined) != (word == "ifndef") if known else True
                stack.append(stack[-1] and value)
            elif word in ("else", "elif") and len(stack) > 1:
                stack[-1] = stack[-2] and (not stack[-1] or word == "elif")
            elif word == "endif" and len(stack) > 1:
                stack.pop()
        elif stack[-1] and not line.lstrip().startswith("//"):
            kept.append(line)
    return "\n".join(kept)


def _case(name: str, expected: set[str]) -> str:
    """The expected case a reported name counts for: Catch2 reports a case's sections as
    "case/section" (a case's own name may hold a "/" too)."""
    return next((case for case in expected if name == case or name.startswith(case + "/")), name)


# an annotation with its arguments: `@Disabled("Remove to run test")`
_ANNOTATION = r'@\w+(?:\s*\((?:[^()"]|"(?:[^"\\]|\\.)*")*\))?'


class Java:
    """javac and the JUnit Platform console launcher with Debian's jars, not Exercism's Gradle
    build (it would fetch them from Maven Central). The tests Exercism disables run, as in
    Aider's benchmark, which removes `@Disabled` before running them."""

    _TEST = re.compile(
        r"@(?:Test|ParameterizedTest|RepeatedTest|TestFactory|TestTemplate)\b"
        rf"(?:\s*{_ANNOTATION})*\s*(?:(?:public|protected|private|static|final)\s+)*"
        r"[\w.<>\[\], ?]+?\s+(\w+)\s*\("  # the return type, then the name
    )
    _PACKAGE = re.compile(r"^\s*package\s+([\w.]+)\s*;", re.M)

    def command(self, exercise: str, tests: list[str]) -> str:
        jvm = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData"
        javac_jvm = " ".join(f"-J{option}" for option in jvm.split())
        # the jars come first on the class path: the solution's classes cannot shadow them
        return (
            f"mkdir -p ../{REPORT} ../.dgm-classes"
            " && find src/test -name '*.java' -exec sed -i -E 's/@Disabled(\\([^)]*\\))?//g' {} +"
            f" && javac {javac_jvm} -nowarn -proc:none -encoding UTF-8 -d ../.dgm-classes"
            f" -cp {_JUNIT}:{_JAVA_JARS} $(find src/main/java src/test/java -name '*.java')"
            f" && java {jvm} -jar {_JUNIT} --disable-banner --details=tree"
            f" --class-path {_JAVA_JARS}:../.dgm-classes --scan-class-path ../.dgm-classes"
            f" --reports-dir ../{REPORT}"
        )

    def expected(self, folder: Path, tests: list[str]) -> set[str]:
        names = set()
        for test in (t for t in tests if t.endswith(".java")):
            text = (folder / test).read_text()
            package = self._PACKAGE.search(text)
            cls = (package[1] + "." if package else "") + PurePosixPath(test).stem
            names |= {f"{cls}::{method}" for method in self._TEST.findall(text)}
        return names

    def verdict(self, expected: set[str], report: Path) -> Verdict:
        passed, failed, ran = set(), set(), False
        for xml in sorted(report.glob("TEST-*.xml")):  # one per test engine
            engine_passed, engine_failed, engine_ran = _junit(xml)
            passed |= {_java_case(key) for key in engine_passed}
            failed |= {_java_case(key) for key in engine_failed}
            ran |= engine_ran
        return judge(expected, passed - failed, failed, ran)

    def unavailable(self, folder: Path) -> str | None:
        try:
            build = (folder / "build.gradle").read_text()
        except OSError:
            return None  # no Gradle build: nothing beyond JUnit and AssertJ is asked for
        wanted = {f"{group}:{name}" for group, name in _GRADLE_DEPENDENCY.findall(build)}
        if missing := sorted(wanted - _JAVA_LIBRARIES):
            return f"its build.gradle needs {', '.join(missing)}, which Debian does not package"
        tests = "\n".join(p.read_text() for p in sorted(folder.glob("src/test/**/*.java")))
        if newer := sorted(m for m in _ASSERTJ_NEWER if re.search(rf"\.{m}\s*\(", tests)):
            return f"its tests use AssertJ's {', '.join(newer)}, newer than Debian's AssertJ 3.14"
        return None


_GRADLE_DEPENDENCY = re.compile(r"""\b\w+\s*\(?\s*(?:platform\s*\(\s*)?["']([\w.-]+):([\w.-]+)""")
# assertions Exercism's tests use that Debian's AssertJ (3.14; Exercism's Gradle build asks
# for 3.25) lacks: such tests cannot compile here
_ASSERTJ_NEWER = ("hasDimensions",)
_JUNIT = "/usr/share/java/junit-platform-console-standalone.jar"  # JUnit 5 with its launcher
_JAVA_JARS = "/usr/share/java/assertj-core.jar:/usr/share/java/json-latest.jar"  # + org.json
# Maven artifacts the toolchain image has (JUnit's with the launcher, the others in _JAVA_JARS)
_JAVA_LIBRARIES = frozenset({
    "org.junit:junit-bom", "org.junit.jupiter:junit-jupiter", "org.junit.jupiter:junit-jupiter-api",
    "org.junit.jupiter:junit-jupiter-params", "org.junit.jupiter:junit-jupiter-engine",
    "org.junit.platform:junit-platform-launcher", "org.assertj:assertj-core", "org.json:json",
})  # fmt: skip


def _java_case(key: str) -> str:
    """`pkg.Outer$Inner::name(int)` (the launcher's legacy report) -> `pkg.Outer::name`."""
    cls, _, name = key.partition("::")
    return f"{cls.split('$')[0]}::{name.split('(')[0]}"


RUNNERS: dict[str, Runner] = {
    "python": Python(),
    "go": Go(),
    "rust": Rust(),
    "javascript": JavaScript(),
    "cpp": Cpp(),
    "java": Java(),
}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
