"""`dgm bench list` and `dgm bench verify` as a user runs them."""

from __future__ import annotations

import json
import shutil

from benchmarks.polyglot import BUILTIN
from tests.conftest import run_dgm
from tests.test_cli import fails_cleanly

PRACTICE = BUILTIN / "python" / "exercises" / "practice"


def test_list():
    rows = json.loads(run_dgm("bench", "list", "--json").stdout)
    assert {r["name"]: r["tasks"] for r in rows} == {"builtin-polyglot": 23, "polyglot": None}


def test_verify_a_checkout_finds_a_broken_exercise(base_image, tmp_path):
    practice = tmp_path / "python" / "exercises" / "practice"
    for name in ("roman", "clamp"):
        shutil.copytree(PRACTICE / name, practice / name)
    # a reference solution that does not solve its exercise
    shutil.copy(PRACTICE / "clamp" / "clamp.py", practice / "clamp" / ".meta" / "example.py")
    result = run_dgm(
        "bench", "verify", "--benchmark", "polyglot", "--path", str(tmp_path), "--json",
        "--backend", "docker",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout) == [
        {"task": "python/clamp", "reference": "empty", "baseline": "empty", "ok": False},
        {"task": "python/roman", "reference": "resolved", "baseline": "empty", "ok": True},
    ]


def test_bad_input(tmp_path):
    fails_cleanly(run_dgm("bench", "verify", "--benchmark", "nope"), "no benchmark 'nope'")
    fails_cleanly(run_dgm("bench", "verify", "--benchmark", "polyglot"), "needs --path")
    not_checkout = run_dgm("bench", "verify", "--benchmark", "polyglot", "--path", str(tmp_path))
    fails_cleanly(not_checkout, "is not a polyglot-benchmark checkout")
    go = run_dgm("bench", "verify", "--benchmark", "builtin-polyglot", "--language", "go")
    fails_cleanly(go, "go is unavailable")
