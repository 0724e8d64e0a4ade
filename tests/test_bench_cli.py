"""`dgm bench list` and `dgm bench verify` as a user runs them."""

from __future__ import annotations

import json
import shutil

from benchmarks.polyglot import BUILTIN
from dgm.expand import SEED_AGENT
from tests.conftest import run_dgm
from tests.scripted_fm import Reply, ScriptedFM, ToolCall
from tests.test_cli import fails_cleanly

PRACTICE = BUILTIN / "python" / "exercises" / "practice"


def test_list():
    rows = json.loads(run_dgm("bench", "list", "--json").stdout)
    assert {r["name"]: r["tasks"] for r in rows} == {"builtin-polyglot": 23, "polyglot": None}
    assert rows[0]["subsets"] == {"medium": 16, "small": 8}


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


CLAMP = (
    "def clamp(value, low, high):\n    if low > high:\n        raise ValueError('bad range')\n"
    "    return max(low, min(value, high))\n"
)


def test_run_records_results_in_the_archive(base_image, tmp_path):
    archive = tmp_path / "archive"
    assert run_dgm("init", archive=archive).returncode == 0
    assert (
        run_dgm("add-agent", str(SEED_AGENT), "--origin", "seed", archive=archive).returncode == 0
    )
    node = json.loads(run_dgm("tree", "--json", archive=archive).stdout)[0]["id"]
    solve = {"command": "create", "path": "clamp.py", "file_text": CLAMP}
    run = ["bench", "run", node[:8], "--benchmark", "builtin-polyglot", "--model", "gpt-4o"]
    with ScriptedFM(Reply("", [ToolCall("editor", solve)]), Reply("Done.")) as fm:
        env = {"OPENAI_API_KEY": "sk-run-key", "OPENAI_BASE_URL": fm.openai_base_url}
        result = run_dgm(*run, "--tasks", "python/clamp", "--json", archive=archive, env=env)
        assert result.returncode == 0, result.stderr
        bad = run_dgm(*run, "--tasks", "python/nope", archive=archive, env=env)
    [row] = json.loads(result.stdout)
    assert (row["task"], row["status"], row["attempt"]) == ("python/clamp", "resolved", 1)
    assert fm.requests[0].headers["authorization"] == "Bearer sk-run-key"
    shown = json.loads(run_dgm("show", node[:8], "--json", archive=archive).stdout)
    assert [e["status"] for e in shown["evaluations"]] == ["resolved"]
    fails_cleanly(bad, "builtin-polyglot has no task 'python/nope'")
    huge = run_dgm(*run, "--subset", "huge", archive=archive)
    fails_cleanly(huge, "builtin-polyglot has no subset 'huge' (it has: medium, small)")
    both = run_dgm(*run, "--subset", "small", "--tasks", "python/clamp", archive=archive)
    fails_cleanly(both, "give --subset or --tasks, not both")
