"""SWE-bench through the `swebench` package (5.x): its test specs, eval scripts, log parsers
and resolution rules, run in our own sandboxes.

A dataset row carries the instance image (`image`), the script that applies the hidden test
patch and runs the tests (`eval_script`), the log parser's name and the eval type. The agent
works on a copy of the image's `/testbed` without the test patch; grading starts a fresh
container of the image (no network, as root in its own writable filesystem, since eval
scripts edit `/testbed`) and removes it with `docker rm -f`: no 15 s stop per task.

What of the patch is graded: it is read as git reads it (`patches`); edits of tests,
`conftest.py` anywhere, the test runner's configuration (pytest.ini, tox.ini, the pytest and
tox sections of setup.cfg and pyproject.toml, `pytest11` entry points) and start-up hooks
(`*.pth`, sitecustomize, package metadata) never reach grading, and the lines it adds must not
reach into the test framework, `/proc` or the process's exit (`solution_check`). It is applied
by git alone (`run_evaluation`'s git commands; not GNU patch, which reads patches otherwise).
The eval script runs in two commands: its set-up, then its test command alone (with the
set-up's environment lines), so which output is the tests' and their exit status come from
the engine, not from text the code under test could print. The log handed to swebench's
grading is rebuilt around that output, and a run whose test command ended abnormally (not
0 or 1: killed, interrupted, a runner error) is unresolved whatever its log says.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import docker
from docker.errors import APIError, ImageNotFound

from archive.records import EvalStatus
from benchmarks import patches
from benchmarks.base import BenchmarkError, Family, Outcome, outcome, read_subsets
from benchmarks.solution_check import check_patch_lines
from sandbox.base import ExecStatus, Sandbox, SandboxError, SandboxSettings

TESTBED = "/testbed"
FIELDS = (
    "instance_id", "repo", "version", "base_commit", "patch", "test_patch",
    "problem_statement", "FAIL_TO_PASS", "PASS_TO_PASS", "image", "eval_script",
    "log_parser", "eval_type",
)  # fmt: skip
GRADING = SandboxSettings(
    user="0:0", workdir=TESTBED, writable_image=True, memory_mb=4096, pids=1024, timeout_s=1800
)


def load_rows(source: str, split: str = "test") -> list[dict]:
    """Rows of a local `.json`/`.jsonl`/`.parquet` file, or of a Hugging Face dataset by name
    (online only)."""
    local = source.endswith((".json", ".jsonl", ".parquet"))
    if local and not Path(source).is_file():
        raise BenchmarkError(f"no dataset file {source}")
    from swebench.harness.utils import load_swebench_dataset

    try:
        rows = [dict(row) for row in load_swebench_dataset(source, split)]
    except KeyError as error:
        raise BenchmarkError(f"a row of {source} has no {error}") from error
    except Exception as error:
        where = "" if local else "; offline, give a local .json, .jsonl or .parquet file"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BenchmarkError(f"cannot load the dataset {source}: {reason}{where}") from error
    return rows


class SWEBenchBenchmark:
    family: Family = "swe-bench"

    def __init__(
        self,
        rows: list[dict],
        new_sandbox: Callable[[SandboxSettings], Sandbox],
        *,
        name: str = "swebench",
        client: docker.DockerClient | None = None,
        subsets: Path | None = None,
        pull: bool = False,
        build_image: Callable[[docker.DockerClient, dict], None] | None = None,
        settings: SandboxSettings = GRADING,
    ):
        """`subsets`: a folder of `<name>.txt` id lists; `pull`: fetch a missing instance
        image from its registry; `build_image`: how to make one locally (built-in suites)."""
        self.name = name
        self._rows = {}
        for number, row in enumerate(rows, 1):
            if not row.get("instance_id"):
                raise BenchmarkError(f"row {number} of {name} has no instance_id")
            self._rows[row["instance_id"]] = row
        self._new_sandbox, self._client = new_sandbox, client
        self._subsets, self._pull, self._build_image = subsets, pull, build_image
        self._settings = settings

    def tasks(self) -> list[str]:
        return sorted(self._rows)

    def subsets(self) -> dict[str, list[str]]:
        if self._subsets is None:
            return {}
        return read_subsets(self._subsets, self.tasks(), lambda task: True)

    def row(self, task: str) -> dict:
        """The task's dataset row; a row lacking fields grading needs is refused here."""
        if task not in self._rows:
            raise BenchmarkError(f"no task {task!r} in {self.name}")
        row = self._rows[task]
        if missing := [field for field in FIELDS if row.get(field) is None]:
            raise BenchmarkError(f"{task} lacks the dataset fields {', '.join(missing)}")
        return row

    def statement(self, task: str) -> str:
        return self.row(task)["problem_statement"]

    def hidden_tests(self, task: str) -> str:
        return self.row(task)["test_patch"]

    def reference_patch(self, task: str) -> str:
        return self.row(task)["patch"]

    def reference_unavailable(self, task: str) -> str | None:
        return None  # the instance image holds all the gold patch needs

    def starts_passing(self, task: str) -> bool:
        return False  # an issue is open: its FAIL_TO_PASS tests fail before the fix

    def image(self, task: str) -> str:
        """The instance image, in the local engine (built or pulled first if need be)."""
        row = self.row(task)
        image = row["image"]
        if self._has(image):
            return image
        if self._build_image is not None:
            self._build_image(self._docker(), row)
        elif self._pull:
            try:
                self._docker().images.pull(image)
            except APIError as error:
                raise BenchmarkError(f"cannot pull {image}: {error.explanation}") from error
        if not self._has(image):
            raise BenchmarkError(
                f"the image {image} of {task} is not in the local Docker engine; "
                "build or load it, or allow pulling when a registry is reachable"
            )
        return image

    def workspace(self, task: str, target: Path) -> None:
        """`/testbed` of the instance image, without its git history (the test patch is never
        in the image: the eval script applies it)."""
        image = self.image(task)
        client = self._docker()
        container = client.containers.create(image, ["true"], network_mode="none")
        try:
            stream, _ = container.get_archive(TESTBED)
            with tempfile.TemporaryFile() as buffer:
                for chunk in stream:
                    buffer.write(chunk)
                buffer.seek(0)
                with tarfile.open(fileobj=buffer) as tar:
                    members = []
                    for member in tar.getmembers():
                        parts = PurePosixPath(member.name).parts[1:]  # drop "testbed/"
                        if parts and parts[0] != ".git":
                            member.name = str(PurePosixPath(*parts))
                            members.append(member)
                    tar.extractall(target, members=members, filter="data")
        finally:
            container.remove(force=True)

    def grade(self, task: str, patch: str) -> Outcome:
        start = time.monotonic()
        try:
            row = self.row(task)
            image = self.image(task)
            from swebench.harness.utils import make_test_spec

            spec = make_test_spec(row)
            hidden = {p for f in patches.parse(row["test_patch"]) for p in f.paths}
        except (BenchmarkError, KeyError, ValueError) as error:
            return outcome(EvalStatus.ERROR, [str(error)], start)
        log: list[str] = []
        try:
            parsed = patches.parse(patch)
        except patches.PatchError as error:
            log.append(f"the patch cannot be taken: {error}")
            return outcome(EvalStatus.UNRESOLVED, log, start)
        kept = [f for f in parsed if not any(p in hidden or is_test_file(p) for p in f.paths)]
        if dropped := sorted({p for f in parsed if f not in kept for p in f.paths}):
            log.append(f"dropped the patch's edits of {', '.join(dropped)}")
        added = [(f.new_path or "", n, line) for f in kept for n, line in f.added]
        if findings := check_patch_lines(added, own_packages(kept)):
            log += ["the solution check flags it, so it counts as unresolved:", *map(str, findings)]
            return outcome(EvalStatus.UNRESOLVED, log, start, findings)
        setup, tests = split_eval_script(spec.eval_script_list)
        try:
            with self._new_sandbox(self._settings.model_copy(update={"image": image})) as box:
                if kept and not _apply(box, patches.join(kept), log):
                    return outcome(EvalStatus.UNRESOLVED, log, start)
                if changed := _runner_config_changed(box, kept):
                    log.append(f"the patch changes the test runner's configuration in {changed}")
                    return outcome(EvalStatus.UNRESOLVED, log, start)
                prepared = box.exec(["bash", "-c", "bash -s 2>&1"], stdin=setup.encode())
                run = box.exec(["bash", "-c", "bash -s 2>&1"], stdin=tests.encode())
        except SandboxError as error:
            log.append(f"the grading container failed: {error}")
            return outcome(EvalStatus.ERROR, log, start)
        ran = rebuilt_log(prepared.stdout + prepared.stderr, run)
        log.append(ran)
        if ExecStatus.ERROR in (prepared.status, run.status):
            log.append("the grading container died")
            return outcome(EvalStatus.ERROR, log, start)
        failed = EvalStatus.UNRESOLVED if patch.strip() else EvalStatus.EMPTY  # no patch at all
        if prepared.status is not ExecStatus.OK or run.status is not ExecStatus.OK:
            log.append(f"the tests did not finish: {run.status.value}")
            return outcome(failed, log, start)
        if run.exit_code not in (0, 1):
            log.append(f"the test command ended abnormally (exit status {run.exit_code})")
            return outcome(failed, log, start)
        resolved, report = _report(spec, patch, ran)
        log.append(json.dumps(report, indent=1))
        return outcome(EvalStatus.RESOLVED if resolved else failed, log, start)

    def _has(self, image: str) -> bool:
        try:
            self._docker().images.get(image)
        except ImageNotFound:
            return False
        return True

    def _docker(self) -> docker.DockerClient:
        if self._client is None:
            from sandbox.docker_sandbox import connect

            self._client = connect()
        return self._client


def is_test_file(path: str) -> bool:
    """Files an agent's patch may not bring into grading, whatever the test patch says: tests,
    `conftest.py` anywhere, the test runner's own configuration files, and what Python runs at
    start-up or reads to load plugins."""
    pure = PurePosixPath(path)
    name = pure.name
    return (
        name in _RUNNER_FILES
        or (name.startswith("test_") and name.endswith(".py"))
        or name.endswith(("_test.py", "_tests.py", ".pth"))
        or any(part.endswith((".egg-info", ".dist-info")) for part in pure.parts[:-1])
    )


_RUNNER_FILES = {
    "conftest.py", "pytest.ini", ".pytest.ini", "tox.ini", "sitecustomize.py",
    "usercustomize.py", "entry_points.txt",
}  # fmt: skip
# what of setup.cfg / pyproject.toml configures the test runner (or registers its plugins)
_RUNNER_SECTIONS = re.compile(r"^(tool:pytest|pytest|tox(:.*)?|testenv(:.*)?)$")
_RUNNER_TABLES = (("tool", "pytest"), ("tool", "tox"), ("project", "entry-points", "pytest11"),
                  ("tool", "poetry", "plugins", "pytest11"))  # fmt: skip


def own_packages(files: list[patches.FilePatch]) -> set[str]:
    """The repository's own top-level packages, as far as the patch shows them."""
    parts = [PurePosixPath(p).parts for f in files for p in f.paths if p.endswith(".py")]
    return {p[1] if p[0] == "src" and len(p) > 2 else p[0] for p in parts if len(p) > 1}


def split_eval_script(lines: list[str]) -> tuple[str, str]:
    """The eval script as two scripts: its set-up (everything before the test output's start
    marker) and its test command alone, after the set-up's environment lines (`source`,
    `conda activate`, `cd`, `export`) so it runs where the set-up left it. A script without
    markers runs whole as the "tests", and its exit status is then its last command's."""
    from swebench.harness.constants import END_TEST_OUTPUT, START_TEST_OUTPUT, TEST_EXIT_CODE_VAR

    head = "#!/bin/bash\nset -uxo pipefail\n"
    # swebench records the exit status in a variable; here it is the command's own
    lines = [line for line in lines if not line.startswith(f"{TEST_EXIT_CODE_VAR}=")]
    starts = [i for i, line in enumerate(lines) if START_TEST_OUTPUT in line]
    ends = [i for i, line in enumerate(lines) if END_TEST_OUTPUT in line]
    if not starts or not ends or ends[0] < starts[0]:
        return head, head + "\n".join(lines) + "\n"
    before, between = lines[: starts[0]], lines[starts[0] + 1 : ends[0]]
    env, heredoc = [], None
    for line in before:
        if heredoc:  # a test patch's body is not the environment
            heredoc = None if line == heredoc else heredoc
        elif match := re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line):
            heredoc = match.group(1)
        elif re.match(r"\s*(source|\.|conda activate|cd|export)\s", line):
            env.append(line)
    return head + "\n".join(before) + "\n", head + "\n".join([*env, *between]) + "\n"


def rebuilt_log(setup_output: str, run) -> str:
    """The log swebench's grading reads: the set-up's output, then the test command's output
    between the markers, with every marker the code under test may have printed defused,
    then the exit status the engine reported."""
    from swebench.harness.constants import END_TEST_OUTPUT, START_TEST_OUTPUT, TEST_EXIT_CODE

    tests = re.sub(r">>>>>", "> > > > >", run.stdout + run.stderr)
    return (
        f"{setup_output}\n+ : '{START_TEST_OUTPUT}'\n{tests}\n+ : '{END_TEST_OUTPUT}'\n"
        f"{TEST_EXIT_CODE}: {run.exit_code}\n"
    )


def _runner_config_changed(box: Sandbox, kept: list[patches.FilePatch]) -> str | None:
    """The first setup.cfg or pyproject.toml whose test-runner sections the applied patch
    changed. Read from the grading container before anything of the agent's has run."""
    for path in sorted({p for f in kept for p in f.paths}):
        name = PurePosixPath(path).name
        if name not in ("setup.cfg", "pyproject.toml"):
            continue
        quoted = shlex.quote(path)
        before = box.exec(["sh", "-c", f"git show HEAD:{quoted} 2>/dev/null"]).stdout
        after = box.exec(["sh", "-c", f"cat {quoted} 2>/dev/null"]).stdout
        if _runner_sections(name, before) != _runner_sections(name, after):
            return path
    return None


def _runner_sections(name: str, text: str) -> object:
    """What of a setup.cfg or pyproject.toml the test runner reads; a file that cannot be
    read stands for itself (so any change to it counts)."""
    try:
        if name == "setup.cfg":
            parser = configparser.RawConfigParser(strict=False)
            parser.read_string(text)
            found = {s: dict(parser[s]) for s in parser.sections() if _RUNNER_SECTIONS.match(s)}
            if parser.has_option("options.entry_points", "pytest11"):
                found["pytest11"] = parser.get("options.entry_points", "pytest11")
            return found
        data = tomllib.loads(text)
    except (configparser.Error, tomllib.TOMLDecodeError):
        return text
    found = {}
    for keys in _RUNNER_TABLES:
        value = data
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        found[".".join(keys)] = value
    return found


def _apply(box: Sandbox, patch: str, log: list[str]) -> bool:
    """Apply as `run_evaluation` does, with its git commands only: `patch --fuzz` reads a
    patch otherwise than git, so the filters above would not have seen what it applies."""
    from swebench.harness.run_evaluation import GIT_APPLY_CMDS

    box.exec(["sh", "-c", "cat > /tmp/patch.diff"], stdin=patch.encode())
    for attempt, command in enumerate(c for c in GIT_APPLY_CMDS if c.startswith("git apply")):
        if attempt:  # a failed attempt can leave a half-applied tree
            box.exec(["bash", "-c", "git checkout -- . ; git clean -fdq"])
        applied = box.exec(["bash", "-c", f"{command} /tmp/patch.diff"])
        if applied.status is ExecStatus.OK and applied.exit_code == 0:
            return True
    reason = (applied.stderr or applied.stdout).strip().splitlines()[-1:]
    log.append(f"the patch does not apply: {' '.join(reason)}")
    return False


def _report(spec, patch: str, log: str) -> tuple[bool, dict]:
    from swebench.harness.grading import get_eval_report

    with tempfile.NamedTemporaryFile("w", suffix=".log") as output:
        output.write(log)
        output.flush()
        prediction = {"instance_id": spec.instance_id, "model_patch": patch}
        report = get_eval_report(spec, prediction, output.name, include_tests_status=True)
    entry = report[spec.instance_id]
    return bool(entry["resolved"]), entry
