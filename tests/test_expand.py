"""Self-modification end to end: the seed agent rewrites itself in a Docker sandbox."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archive import Archive
from archive.records import EvalStatus, Evaluation, EvaluationResult, NodeStatus, Origin
from dgm.expand import SEED_AGENT, ExpansionSettings, choose_entry, expand
from dgm.gateway import Gateway, GatewaySettings, Upstream
from sandbox.base import SandboxSettings
from sandbox.docker_sandbox import DockerSandbox
from tests.conftest import write_files
from tests.scripted_fm import Reply, ScriptedFM, ToolCall

REAL_KEY = "sk-real-key-for-expansions"
DIAGNOSIS = {
    "log_summarization": "The agent stopped before running the tests.",
    "potential_improvements": "Run tests before finishing.",
    "improvement_proposal": "Ask for a correct change, not only a small one",
    "implementation_suggestion": "Reword the system prompt in coding_agent.py.",
    "problem_description": "The system prompt asks for the smallest change; ask for a correct one.",
}
REWORD = {
    "command": "str_replace",
    "path": "coding_agent.py",
    "old_str": "Make the\nsmallest change",
    "new_str": "Make the\nsmallest correct change",
}


class Tasks:
    def statement(self, benchmark: str, task: str) -> str:
        return f"Fix the off-by-one in {task} of {benchmark}."


@pytest.fixture
def world(tmp_path: Path, docker_client, base_image):
    archive = Archive.init(tmp_path / "archive")
    seed = archive.add_node(SEED_AGENT, origin=Origin.SEED, proposal="seed agent")
    trajectory = json.dumps({"type": "model", "message": {"content": "I give up"}}).encode()
    archive.record_evaluations(
        seed.id,
        [
            EvaluationResult("toy", "t1", EvalStatus.UNRESOLVED, trajectory=trajectory, log=b"F"),
            *[EvaluationResult("toy", f"ok{i}", EvalStatus.RESOLVED) for i in range(9)],
        ],
    )
    with ScriptedFM() as fm:
        upstream = Upstream(base_url=fm.openai_base_url, api_key=REAL_KEY)
        with Gateway(GatewaySettings(openai=upstream), archive) as gateway:

            def run(parent: str = seed.id, **overrides):
                return expand(
                    parent,
                    archive=archive,
                    gateway=gateway,
                    new_sandbox=lambda s: DockerSandbox(base_image, s, client=docker_client),
                    tasks=Tasks(),
                    settings=ExpansionSettings(max_steps=10, **overrides),
                    sandbox_settings=SandboxSettings(timeout_s=300),
                    rng=random.Random(0),  # its first draw (0.84) skips the stochasticity entry
                )

            yield archive, seed, fm, run
    archive.close()


def test_an_expansion_commits_a_child_with_its_story(world):
    archive, seed, fm, run = world
    fm.push(
        Reply("Here is my diagnosis: {not json"),  # malformed: asked again
        Reply(json.dumps(DIAGNOSIS), input_tokens=3000, output_tokens=300),
        Reply("", [ToolCall("editor", REWORD)]),
        Reply("", [ToolCall("bash", {"command": "python3 -m pytest -q tests"})]),
        Reply("Reworded the prompt; the tests pass."),
    )
    result = run()
    assert result.entry == "toy/t1" and result.reason == "" and result.child_id
    child = archive.node(result.child_id)
    assert (child.parent_id, child.origin, child.status) == (
        seed.id,
        Origin.SELF_MODIFICATION,
        NodeStatus.PENDING,
    )
    assert child.summary == "# Ask for a correct change, not only a small one"
    assert child.meta["diagnosis"] == DIAGNOSIS and child.meta["tests_passed"]
    assert child.meta["diff_stats"] == {"files": 1, "insertions": 1, "deletions": 1}
    assert child.meta["fm_tokens"] == 3300 + 120 + 3 * 120
    diff = archive.git.diff(seed.commit, child.commit)
    assert "+smallest correct change" in diff and diff.count("diff --git") == 1
    # the diagnosis saw the agent's code, the task and the trajectory
    asked = fm.requests[0].body["messages"][-1]["content"]
    assert "def call_tool" in asked and "off-by-one in t1" in asked and "I give up" in asked
    # the agent worked on its own code through the gateway, under its unit token only
    agent_calls = fm.requests[2:]
    assert "smallest correct change" not in agent_calls[0].body["messages"][1]["content"]
    assert agent_calls[0].body["messages"][1]["content"].startswith("# Ask for a correct")
    assert {r.headers["authorization"] for r in fm.requests} == {f"Bearer {REAL_KEY}"}
    units = {c.unit_id for c in archive.fm_calls()}
    assert units == {"expand:diagnose", "expand:self-modify"}


def test_failed_expansions_are_recorded_with_their_reason(world):
    archive, seed, fm, run = world
    fm.push(Reply(json.dumps(DIAGNOSIS)), Reply("Nothing to change."))
    empty = run()
    assert empty.child_id is None and empty.reason.startswith("empty diff")
    breaking = {**REWORD, "new_str": 'Make the\nsmallest change"""\n)(\n'}
    fm.push(Reply(json.dumps(DIAGNOSIS)), Reply("", [ToolCall("editor", breaking)]), Reply("ok"))
    broken = run()
    assert broken.reason.startswith("the child's tests fail")
    assert archive.node(broken.child_id).status is NodeStatus.REJECTED
    failures = [e for e in archive.events() if e.kind == "expansion_failed"]
    assert [e.payload["reason"][:10] for e in failures] == ["empty diff"]
    assert failures[0].payload["diagnosis"] == DIAGNOSIS and failures[0].node_id == seed.id


def evaluation(task: str, status: EvalStatus) -> Evaluation:
    return Evaluation(
        0, "n", None, "b", "default", task, 1, status, status is EvalStatus.RESOLVED,
        None, None, None, None, None, None, datetime.now(UTC),
    )  # fmt: skip


class Draws(random.Random):
    """A random source whose first draws are given: `random()` returns them in turn."""

    def __init__(self, *draws: float):
        super().__init__(0)
        self.draws = list(draws)

    def random(self) -> float:
        return self.draws.pop(0) if self.draws else super().random()


def test_dgm_entry_rules():
    ten = [evaluation(f"t{i}", EvalStatus.RESOLVED) for i in range(8)]
    failed = [evaluation("u1", EvalStatus.UNRESOLVED), evaluation("u2", EvalStatus.TIMEOUT)]
    unresolved = [*ten, *failed]
    # an empty patch in >= 10% of the tasks comes first
    with_empty = [*ten, evaluation("e", EvalStatus.EMPTY), evaluation("u", EvalStatus.UNRESOLVED)]
    assert choose_entry(with_empty, Draws()) == "solve_empty_patches"
    # then stochasticity with probability 0.25
    assert choose_entry(unresolved, Draws(0.24)) == "solve_stochasticity"
    # then context length, when a trajectory overflowed, with probability 0.5
    assert choose_entry(unresolved, Draws(0.3, 0.49), context_overflowed=True) == (
        "solve_contextlength"
    )
    assert choose_entry(unresolved, Draws(0.3, 0.5), context_overflowed=True) in ("b/u1", "b/u2")
    # else a failed task; harness errors say nothing about the agent
    assert choose_entry(unresolved, Draws(0.3)) in ("b/u1", "b/u2")
    assert choose_entry([*ten, evaluation("x", EvalStatus.ERROR)], Draws(0.3)) is None
    # Polyglot: no special entries; an empty or failed task, else any task
    assert choose_entry(with_empty, Draws(), rules="polyglot") in ("b/e", "b/u")
    assert choose_entry(ten, Draws(), rules="polyglot").startswith("b/t")


HOSTILE_AGENT = """
import pathlib, sys
out = pathlib.Path(sys.argv[sys.argv.index("--out") + 1])
out.mkdir(parents=True, exist_ok=True)
(out / "patch.diff").write_text(
    "diff --git a/../../etc/cron.d/x b/../../etc/cron.d/x\\n"
    "--- /dev/null\\n+++ b/../../etc/cron.d/x\\n@@ -0,0 +1 @@\\n+* * * * * root evil\\n"
)
"""


def test_a_diff_reaching_outside_the_agent_is_refused(world, tmp_path):
    archive, _, fm, run = world
    agent = write_files(tmp_path / "hostile", {"coding_agent.py": HOSTILE_AGENT})
    parent = archive.add_node(agent, origin=Origin.HUMAN, proposal="hostile")
    archive.record_evaluations(parent.id, [EvaluationResult("toy", "t1", EvalStatus.UNRESOLVED)])
    fm.push(Reply(json.dumps(DIAGNOSIS)))
    result = run(parent.id)
    assert result.child_id is None
    assert result.reason == ("the diff touches files outside the agent tree: ../../etc/cron.d/x")
    [event] = [e for e in archive.events() if e.kind == "expansion_failed"]
    assert b"root evil" in archive.blobs.get(event.payload["patch_blob"])
