"""The built-in SWE-bench-format suite: small repositories written for dgm, each with a real
bug, its issue text, a gold patch and a test patch, turned into SWE-bench dataset rows and
instance images offline.

`suites/swebench/<instance_id>/` holds `instance.json` (repo, version, problem statement,
FAIL_TO_PASS, PASS_TO_PASS), `repo/` (the code at the base commit), and `gold/` and
`test_patch/`: the files the fix and the test patch change, as they are afterwards. The base
commit is made with fixed names and dates, so its hash is the same everywhere; the instance
image is the base agent image plus the repository at `/testbed`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import docker
from docker.errors import APIError, BuildError

from benchmarks import patches
from benchmarks.base import BenchmarkError
from benchmarks.swebench import TESTBED, SWEBenchBenchmark
from sandbox.base import Sandbox, SandboxSettings
from sandbox.images import ImageRecipe, ensure_base_image, recipe_tag

SUITE = Path(__file__).with_name("suites") / "swebench"
IMAGE_PREFIX = "dgm-sweb.eval."
# SWE-bench's own shape: reset the test files, apply the test patch, run them between markers
EVAL_SCRIPT = """#!/bin/bash
set -uxo pipefail
cd {testbed}
git -c core.fileMode=false diff {base}
git checkout {base} {tests}
git apply -v - <<'EOF_114329324912'
{test_patch}
EOF_114329324912
: '>>>>> Start Test Output'
python3 -m pytest -rA -p no:cacheprovider {tests}
: '>>>>> End Test Output'
git checkout {base} {tests}
"""
_FIXED = {  # the same commit hash on every machine
    "GIT_AUTHOR_NAME": "dgm",
    "GIT_AUTHOR_EMAIL": "suite@dgm.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "dgm",
    "GIT_COMMITTER_EMAIL": "suite@dgm.invalid",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}


def testbed(folder: Path, target: Path) -> str:
    """Write the instance's repository at its base commit into `target`; the commit's hash."""
    files = sorted(p for p in (folder / "repo").rglob("*") if p.is_file())
    for path in files:
        destination = target / path.relative_to(folder / "repo")
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(path.read_bytes())
        destination.chmod(0o644)
    meta = json.loads((folder / "instance.json").read_text())
    env = {**os.environ, **_FIXED}
    git = ["git", "-c", "commit.gpgsign=false", "-C", str(target)]
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["commit", "-qm", f"{meta['repo']} {meta['version']}"],
    ):
        subprocess.run([*git, *args], check=True, capture_output=True, env=env)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    return head.stdout.strip()


def _overlay_patch(folder: Path, overlay: str) -> str:
    """The patch that turns `repo/` into `repo/` with `<overlay>/`'s files laid over it."""
    changed = sorted(p for p in (folder / overlay).rglob("*") if p.is_file())
    parts = []
    for path in changed:
        name = str(path.relative_to(folder / overlay))
        before = folder / "repo" / name
        parts.append(
            patches.make(name, before.read_text() if before.exists() else None, path.read_text())
        )
    return "".join(parts)


def _digest(folder: Path, base_image: str) -> str:
    digest = hashlib.sha256(base_image.encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def rows(base_image: str | None = None) -> list[dict]:
    """The suite as SWE-bench dataset rows (with `image`, `eval_script`, `log_parser`)."""
    base_image = base_image or recipe_tag(ImageRecipe())
    found = []
    for folder in sorted(p.parent for p in SUITE.glob("*/instance.json")):
        meta = json.loads((folder / "instance.json").read_text())
        with tempfile.TemporaryDirectory(prefix="dgm-testbed-") as tmp:
            base = testbed(folder, Path(tmp))
        test_patch = _overlay_patch(folder, "test_patch")
        tests = " ".join(p for f in patches.parse(test_patch) for p in f.paths)
        instance = folder.name
        image = f"{IMAGE_PREFIX}{instance.replace('__', '_1776_')}:{_digest(folder, base_image)}"
        found.append(
            {
                **meta,
                "instance_id": instance,
                "base_commit": base,
                "environment_setup_commit": base,
                "patch": _overlay_patch(folder, "gold"),
                "test_patch": test_patch,
                "hints_text": "",
                "image": image,
                "eval_script": EVAL_SCRIPT.format(
                    testbed=TESTBED, base=base, tests=tests, test_patch=test_patch.rstrip("\n")
                ),
                "log_parser": "parse_log_pytest",
                "eval_type": "pass_and_fail",
            }
        )
    return found


def build_image(client: docker.DockerClient, row: dict) -> None:
    """The instance image: the base agent image with the repository at `/testbed`, built
    with no network."""
    folder = SUITE / row["instance_id"]
    base_image = ensure_base_image(client)
    with tempfile.TemporaryDirectory(prefix="dgm-instance-") as tmp:
        if testbed(folder, Path(tmp) / "testbed") != row["base_commit"]:
            raise BenchmarkError(f"{folder} does not give the base commit of {row['instance_id']}")
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            dockerfile = f"FROM {base_image}\nCOPY testbed {TESTBED}\n".encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(dockerfile)
            tar.addfile(info, io.BytesIO(dockerfile))
            tar.add(Path(tmp) / "testbed", arcname="testbed")
        context.seek(0)
        try:
            client.images.build(
                fileobj=context, custom_context=True, tag=row["image"], network_mode="none",
                pull=False, rm=True, forcerm=True,
            )  # fmt: skip
        except (BuildError, APIError) as error:
            reason = getattr(error, "msg", None) or getattr(error, "explanation", error)
            raise BenchmarkError(f"cannot build {row['image']}: {reason}") from error


def builtin_swebench(
    new_sandbox: Callable[[SandboxSettings], Sandbox],
    client: docker.DockerClient | None = None,
    *,
    name: str = "builtin-swebench",
) -> SWEBenchBenchmark:
    return SWEBenchBenchmark(
        rows(), new_sandbox, name=name, client=client, subsets=SUITE / "subsets",
        build_image=build_image,
    )  # fmt: skip
