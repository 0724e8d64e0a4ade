"""The agent loop against a scripted model server (OpenAI's wire format) on loopback."""

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import coding_agent
import pytest


def tool_call(name, **arguments):
    return {
        "id": f"call_{name}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


@pytest.fixture
def model(monkeypatch):
    """A server that answers with the replies in `script`, and keeps what it was sent."""
    script, seen = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            if not script:  # nothing more to say: the model hangs
                time.sleep(30)
            status, message = script.pop(0)
            body = json.dumps(
                {
                    "choices": [{"message": message}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5},
                }
                if status == 200
                else {"error": {"message": message}}
            ).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "unit-token")
    yield script, seen
    server.shutdown()


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    (path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    for command in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
    ):
        subprocess.run(["git", "-C", str(path), *command], check=True)
    return path


def reply(content="", *calls):
    return 200, {"role": "assistant", "content": content, "tool_calls": list(calls)}


def test_fixes_a_bug_and_leaves_a_patch(model, repo, tmp_path):
    script, seen = model
    script += [
        reply("", tool_call("editor", command="view", path="calc.py")),
        reply(
            "",
            tool_call(
                "editor", command="str_replace", path="calc.py", old_str="a - b", new_str="a + b"
            ),
        ),
        reply("", tool_call("bash", command="python3 -c 'import calc; print(calc.add(2, 3))'")),
        reply("Fixed add."),
    ]
    out = tmp_path / "out"
    out.mkdir()
    assert coding_agent.run("add() subtracts", str(repo), out, "gpt-4o", 10) == "done"
    assert "+    return a + b" in coding_agent.patch(str(repo))
    assert seen[-1]["messages"][-1] == {"role": "tool", "tool_call_id": "call_bash", "content": "5"}
    kinds = [
        json.loads(line)["type"] for line in (out / "trajectory.jsonl").read_text().splitlines()
    ]
    assert kinds == ["model", "tool", "model", "tool", "model", "tool", "model", "stop"]


def test_malformed_tool_calls_end_in_a_recorded_failure(model, repo, tmp_path):
    script, _ = model
    bad = {"id": "x", "type": "function", "function": {"name": "bash", "arguments": "{oops"}}
    script += [reply("", bad), reply("", tool_call("teleport", to="mars")), reply("", bad)]
    assert coding_agent.run("task", str(repo), tmp_path, "gpt-4o", 10) == "format failures"
    last = (tmp_path / "trajectory.jsonl").read_text().splitlines()[-1]
    assert json.loads(last)["reason"] == "format failures"


def test_an_endless_tool_loop_stops_at_the_step_limit(model, repo, tmp_path):
    script, _ = model
    script += [reply("", tool_call("bash", command="true"))] * 4
    assert coding_agent.run("task", str(repo), tmp_path, "gpt-4o", 4) == "step limit"


def test_context_overflow_trims_history_instead_of_crashing(model, repo, tmp_path):
    script, seen = model
    script += [reply("", tool_call("bash", command="yes | head -c 5000"))] * 8
    script += [(400, "This model's maximum context length is 8192 tokens"), reply("Done.")]
    assert coding_agent.run("task", str(repo), tmp_path, "gpt-4o", 20) == "done"
    after = [m["content"] for m in seen[-1]["messages"] if m["role"] == "tool"]
    assert any("[trimmed to fit the context window]" in c for c in after)
    assert after[-1] == "y\n" * 2499 + "y"  # recent results stay whole


def test_budget_error_stops_the_agent(model, repo, tmp_path):
    script, _ = model
    script += [(402, "this unit's budget of 100 tokens is spent")]
    assert coding_agent.run("task", str(repo), tmp_path, "gpt-4o", 10) == "model error (budget)"


def test_its_own_time_limit_stops_it_between_steps(model, repo, tmp_path):
    script, seen = model
    script += [reply("", tool_call("bash", command="sleep 0.5"))] * 3
    assert coding_agent.run("task", str(repo), tmp_path, "gpt-4o", 10, 0.2) == "time limit"
    assert len(seen) == 1  # no step started after the limit


def test_a_killed_agent_leaves_the_patch_of_its_last_step(model, repo, tmp_path):
    script, _ = model
    edit = tool_call("editor", command="str_replace", path="calc.py", old_str="a - b",
                     new_str="a + b")  # fmt: skip
    script += [reply("", edit)]  # then the model hangs
    (tmp_path / "task.md").write_text("add() subtracts")
    out = tmp_path / "out"
    agent = Path(coding_agent.__file__)
    process = subprocess.Popen(
        [sys.executable, str(agent), "--task-file", str(tmp_path / "task.md"),
         "--repo", str(repo), "--out", str(out)],
    )  # fmt: skip
    patch = out / "patch.diff"
    try:
        for _ in range(400):  # the model hangs after one step: the patch comes from that step
            if patch.exists() and "+    return a + b" in patch.read_text():
                break
            time.sleep(0.05)
        assert process.poll() is None, "the agent stopped on its own"
    finally:
        process.kill()
        process.wait()
    assert "+    return a + b" in patch.read_text()
