"""Aider's Polyglot benchmark layout, and the built-in suite that follows it.

`<root>/<language>/exercises/practice/<exercise>/`: `.meta/config.json` lists the solution,
test and example (reference) files; the statement is `.docs/instructions.md` plus
`.docs/instructions.append.md` when present. The agent gets the exercise without its tests
and reference; grading copies the pristine exercise into a fresh sandbox, applies the agent's
patch (minus any edit of a test file) and runs the language's tests.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from archive.records import EvalStatus
from benchmarks.base import (
    BenchmarkError,
    Outcome,
    drop_sections,
    file_diff,
    outcome,
    read_subsets,
)
from sandbox.base import ExecStatus, Sandbox, SandboxError, SandboxSettings, in_folder

BUILTIN = Path(__file__).with_name("suites") / "polyglot"
# per language: the command that runs an exercise's tests (more with the polyglot image)
TEST_COMMANDS = {"python": ["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider"]}
PROMPT = (
    "Use the instructions above to change the files {files}. Keep the names of existing "
    "functions and classes: the hidden tests use them. Use the standard library only."
)
WORKDIR = "/work/exercise"


class PolyglotBenchmark:
    def __init__(
        self,
        new_sandbox: Callable[[SandboxSettings], Sandbox],
        root: Path = BUILTIN,
        *,
        languages: tuple[str, ...] = tuple(TEST_COMMANDS),
        name: str = "polyglot",
        settings: SandboxSettings | None = None,
    ):
        root = Path(root)
        if not any((root / lang / "exercises" / "practice").is_dir() for lang in languages):
            raise BenchmarkError(
                f"{root} is not a polyglot-benchmark checkout: no "
                f"<language>/exercises/practice/ folder for {', '.join(languages)}"
            )
        self.name, self.root, self.languages = name, root, languages
        self._new_sandbox = new_sandbox
        self._settings = settings or SandboxSettings(timeout_s=120)

    def tasks(self) -> list[str]:
        return sorted(
            f"{lang}/{config.parent.parent.name}"
            for lang in self.languages
            for config in (self.root / lang / "exercises" / "practice").glob("*/.meta/config.json")
        )

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
        return None

    def reference_patch(self, task: str) -> str:
        """The patch that turns the starting files into the exercise's reference solution."""
        folder, files = self._folder(task), self._files(task)
        return "".join(
            file_diff(name, (folder / name).read_text(), (folder / example).read_text())
            for name, example in zip(files["solution"], files["example"], strict=False)
        )

    def grade(self, task: str, patch: str) -> Outcome:
        start = time.monotonic()
        try:
            folder, files = self._folder(task), self._files(task)
        except BenchmarkError as error:
            return outcome(EvalStatus.ERROR, [str(error)], start)
        hidden = {*files["test"], ".meta", ".docs"}
        kept, dropped = drop_sections(patch, lambda p: p in hidden or p.split("/")[0] in hidden)
        log = [f"dropped the patch's edits of {', '.join(dropped)}"] if dropped else []
        with tempfile.TemporaryDirectory(prefix="dgm-grade-") as tmp:
            pristine = Path(tmp) / "exercise"
            shutil.copytree(folder, pristine, ignore=shutil.ignore_patterns(".meta", ".docs"))
            try:
                with self._new_sandbox(self._settings) as sandbox:
                    sandbox.copy_in(pristine, WORKDIR)
                    if kept.strip():
                        applied = sandbox.exec(
                            in_folder(WORKDIR, ["git", "apply", "--whitespace=nowarn", "-"]),
                            stdin=kept.encode(),
                        )
                        if applied.exit_code != 0:
                            log.append(f"the patch does not apply: {applied.stderr.strip()}")
                            return outcome(EvalStatus.UNRESOLVED, log, start)
                    command = TEST_COMMANDS[task.partition("/")[0]]
                    tests = sandbox.exec(in_folder(WORKDIR, command))
            except SandboxError as error:
                log.append(f"the grading sandbox failed: {error}")
                return outcome(EvalStatus.ERROR, log, start)
        log.append(tests.stdout + tests.stderr)
        if tests.status is ExecStatus.ERROR:
            return outcome(EvalStatus.ERROR, log, start)
        if tests.status is ExecStatus.OK and tests.exit_code == 0:
            return outcome(EvalStatus.RESOLVED, log, start)
        # the tests ran and failed (or hung, or ran out of memory): the solution's fault
        empty = not kept.strip()
        return outcome(EvalStatus.EMPTY if empty else EvalStatus.UNRESOLVED, log, start)
