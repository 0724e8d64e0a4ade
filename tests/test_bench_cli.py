"""`dgm bench list` and `dgm bench verify` as a user runs them."""

from __future__ import annotations

import json
import shutil

import pytest

from benchmarks.base import BenchmarkError
from benchmarks.polyglot import BUILTIN, PolyglotBenchmark
from dgm.expand import SEED_AGENT
from tests.conftest import run_dgm
from tests.scripted_fm import Reply, ScriptedFM, ToolCall
from tests.test_cli import fails_cleanly

PRACTICE = BUILTIN / "python" / "exercises" / "practice"


def test_list():
    rows = json.loads(run_dgm("bench", "list", "--json").stdout)
    assert {r["name"]: r["tasks"] for r in rows} == {
        "builtin-polyglot": 23,
        "builtin-swebench": 5,
        "polyglot": None,
        "swebench": None,
    }
    assert rows[0]["subsets"] == {"heldout": 6, "medium": 16, "quickstart": 3, "small": 8}
    assert rows[1]["subsets"] == {"small": 2}


def test_verify_a_checkout_finds_a_broken_exercise(base_image, tmp_path):
    practice = tmp_path / "python" / "exercises" / "practice"
    for name in ("roman", "clamp", "shout"):
        shutil.copytree(PRACTICE / name, practice / name)
    # a reference solution that does not solve its exercise
    shutil.copy(PRACTICE / "clamp" / "clamp.py", practice / "clamp" / ".meta" / "example.py")
    # one that solves it, but in a way the solution check flags
    example = practice / "shout" / ".meta" / "example.py"
    example.write_text("import atexit\n" + example.read_text())
    result = run_dgm(
        "bench", "verify", "--benchmark", "polyglot", "--path", str(tmp_path), "--json",
        "--backend", "docker",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    rows = json.loads(result.stdout)["tasks"]
    flagged = rows[2].pop("flagged")
    assert rows == [
        {"task": "python/clamp", "reference": "empty", "baseline": "empty", "ok": False,
         "flagged": [], "reference_unavailable": None},
        {"task": "python/roman", "reference": "resolved", "baseline": "empty", "ok": True,
         "flagged": [], "reference_unavailable": None},
        {"task": "python/shout", "reference": "unresolved", "baseline": "empty", "ok": False,
         "reference_unavailable": None},
    ]  # fmt: skip
    assert flagged == ["shout.py:1: runs code when the process exits (exit-hook): import atexit"]
    text = run_dgm(
        "bench", "verify", "--benchmark", "polyglot", "--path", str(tmp_path),
        "--backend", "docker",
    )  # fmt: skip
    assert "python/shout: the solution check flags the reference: shout.py:1" in text.stdout


def test_bad_input(tmp_path):
    fails_cleanly(run_dgm("bench", "verify", "--benchmark", "nope"), "no benchmark 'nope'")
    fails_cleanly(run_dgm("bench", "verify", "--benchmark", "polyglot"), "needs a path")
    not_checkout = run_dgm("bench", "verify", "--benchmark", "polyglot", "--path", str(tmp_path))
    fails_cleanly(not_checkout, "is not a polyglot-benchmark checkout")
    go = run_dgm("bench", "verify", "--benchmark", "builtin-polyglot", "--language", "go")
    fails_cleanly(go, "builtin-polyglot has no exercises in go")


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
        partly = run_dgm(*run, "--tasks", "python/nope,python/clamp", "--json", archive=archive)
    [row] = json.loads(result.stdout)
    assert (row["task"], row["status"], row["attempt"]) == ("python/clamp", "resolved", 1)
    assert fm.requests[0].headers["authorization"] == "Bearer sk-run-key"
    shown = json.loads(run_dgm("show", node[:8], "--json", archive=archive).stdout)
    assert [e["status"] for e in shown["evaluations"]] == ["resolved", "error"]
    # an unknown id is recorded as an error (not counted) and the rest goes on
    assert partly.returncode == 0, partly.stderr
    assert [(r["task"], r["status"], r["reason"]) for r in json.loads(partly.stdout)] == [
        ("python/nope", "error", "no task 'python/nope' in builtin-polyglot"),
        ("python/clamp", "resolved", None),
    ]
    ids = tmp_path / "stage.txt"
    ids.write_text("# a stage of my own\npython/clamp\n")
    staged = json.loads(run_dgm(*run, "--subset", str(ids), "--json", archive=archive).stdout)
    assert [(r["task"], r["attempt"]) for r in staged] == [("python/clamp", 1)]
    huge = run_dgm(*run, "--subset", "huge", archive=archive)
    fails_cleanly(
        huge,
        "builtin-polyglot has no subset 'huge' (it has: heldout, medium, quickstart, small) "
        "and no file has that name",
    )
    both = run_dgm(*run, "--subset", "small", "--tasks", "python/clamp", archive=archive)
    fails_cleanly(both, "give --subset or --tasks, not both")


def test_verify_and_run_the_built_in_swebench_suite(base_image, tmp_path):
    verified = run_dgm("bench", "verify", "--benchmark", "builtin-swebench", "--json")
    assert verified.returncode == 0, verified.stderr
    assert [(r["reference"], r["baseline"]) for r in json.loads(verified.stdout)["tasks"]] == [
        ("resolved", "empty")
    ] * 5
    archive = tmp_path / "archive"
    assert run_dgm("init", archive=archive).returncode == 0
    assert (
        run_dgm("add-agent", str(SEED_AGENT), "--origin", "seed", archive=archive).returncode == 0
    )
    node = json.loads(run_dgm("tree", "--json", archive=archive).stdout)[0]["id"]
    # the agent works in the instance image: it can run the repository's own tests there
    fix = {"command": "str_replace", "path": "semver/version.py",
           "old_str": "    major, minor, patch = parts\n",
           "new_str": "    major, minor, patch = (int(part) for part in parts)\n"}  # fmt: skip
    tests = {"command": "cd /work/repo && python3 -m pytest -q tests 2>&1 | tail -1"}
    script = [Reply("", [ToolCall("bash", tests)]), Reply("", [ToolCall("editor", fix)]),
              Reply("Done.")]  # fmt: skip
    run = ["bench", "run", node[:8], "--benchmark", "builtin-swebench", "--model", "gpt-4o"]
    with ScriptedFM(*script) as fm:
        env = {"OPENAI_API_KEY": "sk-run-key", "OPENAI_BASE_URL": fm.openai_base_url}
        predictions = tmp_path / "predictions.jsonl"
        result = run_dgm(*run, "--tasks", "dgm__semver-4", "--json", "--predictions",
                         str(predictions), archive=archive, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [(r["task"], r["status"]) for r in json.loads(result.stdout)] == [
        ("dgm__semver-4", "resolved")
    ]
    # the patch it made, as SWE-bench's harness and sb-cli read predictions
    [prediction] = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert prediction["instance_id"] == "dgm__semver-4"
    assert prediction["model_name_or_path"] == f"dgm-{node}"
    assert "+    major, minor, patch = (int(part) for part in parts)" in prediction["model_patch"]
    # the tool result the agent saw: the repository's tests ran in its sandbox
    assert "4 passed" in json.dumps(fm.requests[1].body)


def test_dgm_and_hgm_task_lists_ship_with_dgm():
    # DGM's swe_bench/subsets/{small,medium,big}.json and polyglot/subsets/{small,medium}.json;
    # HGM searched small + medium ("SWE-Verified-60")
    from benchmarks.registry import subset_tasks
    from benchmarks.swebench import SWEBenchBenchmark

    swebench = SWEBenchBenchmark([], lambda s: None, name="swebench")
    sizes = {name: len(subset_tasks(swebench, name)) for name in ("dgm-small", "dgm-medium")}
    assert sizes == {"dgm-small": 10, "dgm-medium": 50}
    assert len(set(subset_tasks(swebench, "dgm-big"))) == 140
    hgm = subset_tasks(swebench, "hgm-60")
    assert hgm == subset_tasks(swebench, "dgm-small") + subset_tasks(swebench, "dgm-medium")
    assert all("__" in task for task in hgm)  # owner__repo-number
    polyglot = PolyglotBenchmark(lambda s: None, BUILTIN, name="polyglot")
    small = subset_tasks(polyglot, "dgm-small")
    assert len(small) == 10 and small[0] == "go/dominoes"
    medium = subset_tasks(polyglot, "dgm-medium")
    assert len(medium) == 50 and set(small) & set(medium) == {"python/dominoes"}  # as published
    with pytest.raises(BenchmarkError, match=r"it has: heldout, medium, quickstart, small, "):
        subset_tasks(polyglot, "dgm-tiny")
