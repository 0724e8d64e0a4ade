"""An agent's trajectory read as a conversation (`dgm show --trajectory`) and written in
mini-swe-agent's trajectory format, from the JSON lines the seed agent writes; lines an
evolved agent wrote instead are kept, never trusted."""

from __future__ import annotations

import json
from pathlib import Path

from archive import Archive, EvalStatus, EvaluationResult, Origin
from dgm.trajectories import mini_swe_agent
from tests.conftest import run_dgm


def line(entry: str, **fields) -> str:
    """A line as the seed agent's Trajectory.log writes it."""
    return json.dumps({"type": entry, "time": 1.0, **fields})


EDIT = {"name": "editor", "arguments": json.dumps({"command": "view", "path": "a.py"})}
TRAJECTORY = "\n".join([
    line("model", step=0, message={
        "role": "assistant", "content": "Let me look. [bold red]not markup[/]",
        "tool_calls": [{"id": "call_a", "type": "function", "function": EDIT}],
    }, usage={"input_tokens": 10, "output_tokens": 5}),
    line("tool", step=0, call=EDIT, result="def f(): pass", ok=True),
    line("model_error", step=1, kind="rate_limit", error="429"),
    "the agent printed this, not JSON",
    line("model", step=1, message={"role": "assistant", "content": "Done.", "tool_calls": []},
         usage={}),
    line("stop", reason="done"),
]).encode()  # fmt: skip


def test_a_trajectory_in_mini_swe_agent_s_format():
    """mini-swe-agent 2.x's DefaultAgent.serialize writes {"info": {"model_stats":
    {"instance_cost", "api_calls"}, "exit_status", "submission", ...}, "messages": [...],
    "trajectory_format": "mini-swe-agent-1.1"}; its inspector reads `messages`, each with a
    role and its content (a string, or a list of parts)."""
    data = mini_swe_agent(TRAJECTORY, submission="diff", cost_usd=0.25, status="resolved")
    assert data["trajectory_format"] == "mini-swe-agent-1.1"
    assert data["info"] == {
        "exit_status": "done", "submission": "diff",
        "model_stats": {"instance_cost": 0.25, "api_calls": 3},
    }  # fmt: skip
    roles = [m["role"] for m in data["messages"]]
    assert roles == ["assistant", "tool", "user", "user", "assistant"]
    first, tool = data["messages"][:2]
    assert first["tool_calls"] == [{"id": "call_a", "type": "function", "function": EDIT}]
    assert (tool["tool_call_id"], tool["content"]) == ("call_a", "def f(): pass")
    assert data["messages"][3]["content"] == "[line] the agent printed this, not JSON"
    assert all(isinstance(m["content"], str) for m in data["messages"])
    json.dumps(data)  # plain JSON throughout


def test_whatever_an_agent_wrote_becomes_a_valid_trajectory():
    hostile = b"\n".join([
        b"\xff\xfe not utf-8",
        b'{"type": "model", "message": {"content": {"nested": 1}, "tool_calls": "no"}}',
        b'{"type": "tool", "call": {"name": 3}, "result": null}',
        b"[1, 2]",
        b'{"type": "stop", "reason": ["x"]}',
    ])  # fmt: skip
    data = mini_swe_agent(hostile, submission="", cost_usd=0.0, status="empty")
    messages = data["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "user"]
    assert messages[2]["tool_call_id"] == "call_1_unanswered"
    assert data["info"]["exit_status"] == '["x"]'
    assert all(isinstance(m["content"], str) for m in messages)
    empty = mini_swe_agent(None, submission="", cost_usd=0.0, status="error")
    assert (empty["info"]["exit_status"], empty["messages"]) == ("error", [])


def archive_with_an_attempt(tmp_path: Path, agent_dir: Path) -> tuple[Path, str]:
    path = tmp_path / "arc"
    with Archive.init(path) as arc:
        node = arc.add_node(agent_dir, origin=Origin.SEED, proposal="seed")
        for trajectory in (line("stop", reason="x").encode(), TRAJECTORY):  # the latest: shown
            result = EvaluationResult(
                "swe", "t0", EvalStatus.RESOLVED, stage="default", model="m", cost_usd=0.25,
                patch=b"diff --git a/a.py b/a.py\n", trajectory=trajectory,
            )  # fmt: skip
            arc.record_evaluations(node.id, [result])
    return path, node.id


def test_dgm_show_prints_a_trajectory_and_writes_it_for_mini_swe_agent(tmp_path, agent_dir):
    arc, node = archive_with_an_attempt(tmp_path, agent_dir)
    shown = run_dgm("show", node[:8], "--task", "t0", "--trajectory", archive=arc)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert f"node {node[:8]} on t0, attempt 2: resolved" in text
    assert "Let me look. [bold red]not markup[/]" in text  # printed as written, not styled
    assert '-> editor {\n  "command": "view"' in text and "def f(): pass" in text
    assert "the agent printed this, not JSON" in text
    first = run_dgm("show", node[:8], "--task", "t0", "--attempt", "1", "--trajectory", archive=arc)
    assert "attempt 1" in first.stdout and "Let me look" not in first.stdout
    out = tmp_path / "t0.traj.json"
    written = run_dgm("show", node, "--task", "t0", "--format", "mini-swe-agent", "--out", str(out),
                      archive=arc)  # fmt: skip
    assert written.returncode == 0, written.stderr
    data = json.loads(out.read_text())
    assert data["info"]["submission"] == "diff --git a/a.py b/a.py\n"
    assert data["info"]["model_stats"] == {"instance_cost": 0.25, "api_calls": 3}
    assert data == json.loads(
        run_dgm("show", node, "--task", "t0", "--format", "mini-swe-agent", archive=arc).stdout
    )
    for argv, message in (
        (["--trajectory"], "--trajectory needs --task TASK: the task whose attempt to show"),
        (["--task", "t9"], f"node {node[:8]} has no result on t9; it has results on t0"),
        (["--task", "t0", "--attempt", "7"], "no attempt 7 at t0; its attempts: 1, 2"),
        (["--task", "t0", "--format", "html"], "--format html: choose text or mini-swe-agent"),
    ):
        refused = run_dgm("show", node, *argv, archive=arc)
        assert refused.returncode == 2 and refused.stderr.strip() == f"dgm: error: {message}"
