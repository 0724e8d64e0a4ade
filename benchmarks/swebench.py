"""SWE-bench through the `swebench` package (5.x): its test specs, eval scripts, log parsers
and resolution rules, run in our own sandboxes.

A dataset row carries the instance image (`image`), the script that applies the hidden test
patch and runs the tests (`eval_script`), the log parser's name and the eval type. The agent
works on a copy of the image's `/testbed` without the test patch; grading starts a fresh
container of the image (no network, as root in its own writable filesystem, since eval
scripts edit `/testbed`), applies the patch the way `run_evaluation` does (minus edits of test
files), runs the eval script and grades the log with `swebench.harness.grading`. The container
is removed with `docker rm -f`: no 15 s stop per task.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import docker
from docker.errors import APIError, ImageNotFound

from archive.records import EvalStatus
from benchmarks.base import (
    BenchmarkError,
    Outcome,
    drop_sections,
    outcome,
    patch_paths,
    read_subsets,
)
from sandbox.base import ExecResult, ExecStatus, Sandbox, SandboxError, SandboxSettings

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

    def reference_patch(self, task: str) -> str:
        return self.row(task)["patch"]

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
        except (BenchmarkError, KeyError, ValueError) as error:
            return outcome(EvalStatus.ERROR, [str(error)], start)
        hidden = set(patch_paths(row["test_patch"]))
        kept, dropped = drop_sections(patch, lambda path: path in hidden or is_test_file(path))
        log = [f"dropped the patch's edits of {', '.join(dropped)}"] if dropped else []
        try:
            with self._new_sandbox(self._settings.model_copy(update={"image": image})) as box:
                if kept.strip() and not _apply(box, kept, log):
                    return outcome(EvalStatus.UNRESOLVED, log, start)
                box.exec(["sh", "-c", "cat > /eval.sh"], stdin=spec.eval_script.encode())
                run = box.exec(["bash", "-c", "bash /eval.sh 2>&1"])
        except SandboxError as error:
            log.append(f"the grading container failed: {error}")
            return outcome(EvalStatus.ERROR, log, start)
        log.append(run.stdout + run.stderr)
        if run.status is ExecStatus.ERROR:
            log.append("the grading container died")
            return outcome(EvalStatus.ERROR, log, start)
        if run.status is not ExecStatus.OK:
            log.append(f"the tests did not finish: {run.status.value}")
            return outcome(_failed(kept), log, start)
        resolved, report = _report(spec, kept, run)
        log.append(json.dumps(report, indent=1))
        return outcome(EvalStatus.RESOLVED if resolved else _failed(kept), log, start)

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
    """Files an agent's patch may not bring into grading, whatever the test patch says."""
    name = PurePosixPath(path).name
    return (
        name == "conftest.py"
        or (name.startswith("test_") and name.endswith(".py"))
        or name.endswith(("_test.py", "_tests.py"))
    )


def _apply(box: Sandbox, patch: str, log: list[str]) -> bool:
    """Apply as `run_evaluation` does: git apply, then --3way, --reject, then `patch`."""
    from swebench.harness.run_evaluation import GIT_APPLY_CMDS

    box.exec(["sh", "-c", "cat > /tmp/patch.diff"], stdin=patch.encode())
    for attempt, command in enumerate(GIT_APPLY_CMDS):
        if attempt:  # a failed attempt can leave a half-applied tree
            box.exec(["bash", "-c", "git checkout -- . ; git clean -fdq"])
        applied = box.exec(["bash", "-c", f"{command} /tmp/patch.diff"])
        if applied.status is ExecStatus.OK and applied.exit_code == 0:
            return True
    reason = (applied.stderr or applied.stdout).strip().splitlines()[-1:]
    log.append(f"the patch does not apply: {' '.join(reason)}")
    return False


def _report(spec, patch: str, run: ExecResult) -> tuple[bool, dict]:
    from swebench.harness.grading import get_eval_report

    with tempfile.NamedTemporaryFile("w", suffix=".log") as output:
        output.write(run.stdout + run.stderr)
        output.flush()
        prediction = {"instance_id": spec.instance_id, "model_patch": patch}
        report = get_eval_report(spec, prediction, output.name, include_tests_status=True)
    entry = report[spec.instance_id]
    return bool(entry["resolved"]), entry


def _failed(patch: str) -> EvalStatus:
    return EvalStatus.UNRESOLVED if patch.strip() else EvalStatus.EMPTY
