"""Self-modification end to end: the seed agent rewrites itself in a Docker sandbox; and DGM's
choice of what to improve (DGM_outer.py's choose_selfimproves) and its diagnosis prompts
(prompts/self_improvement_prompt.py), checked against hand-computed figures."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archive import Archive
from archive.events import EventKind
from archive.records import EvalStatus, Evaluation, EvaluationResult, NodeStatus, Origin
from benchmarks.agent_run import AgentLimits
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

    def hidden_tests(self, benchmark: str, task: str) -> str:
        return f"def test_{task}_bounds():\n    assert count(3) == 3\n"


@pytest.fixture
def world(tmp_path: Path, docker_client, base_image):
    archive = Archive.init(tmp_path / "archive")
    seed = archive.add_node(SEED_AGENT, origin=Origin.SEED, proposal="seed agent")
    trajectory = json.dumps({"type": "model", "message": {"content": "I give up"}}).encode()
    failed = EvaluationResult(
        "toy", "t1", EvalStatus.UNRESOLVED, trajectory=trajectory,
        log=b"FAILED test_t1_bounds - assert 2 == 3", patch=b"+    return n - 1\n",
    )  # fmt: skip
    solved = [EvaluationResult("toy", f"ok{i}", EvalStatus.RESOLVED) for i in range(9)]
    archive.record_evaluations(seed.id, [failed, *solved])
    with ScriptedFM() as fm:
        upstream = Upstream(base_url=fm.openai_base_url, api_key=REAL_KEY)
        with Gateway(GatewaySettings(openai=upstream), archive) as gateway:

            def run(parent: str = seed.id, rng: random.Random | None = None, **overrides):
                return expand(
                    parent,
                    archive=archive,
                    gateway=gateway,
                    new_sandbox=lambda s: DockerSandbox(base_image, s, client=docker_client),
                    tasks=Tasks(),
                    settings=ExpansionSettings(**{"agent": AgentLimits(max_steps=10), **overrides}),
                    sandbox_settings=SandboxSettings(timeout_s=300),
                    # its first draw (0.84) skips the stochasticity entry
                    rng=rng or random.Random(0),
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
    # the diagnosis saw what DGM shows: the agent's code, asked for a general improvement; the
    # agent's log, the task, its patch, the hidden tests and their results
    system, asked = (m["content"] for m in fm.requests[0].body["messages"][:2])
    assert "def call_tool" in system and "not on one particular task" in system
    for shown in ("I give up", "off-by-one in t1", "return n - 1", "def test_t1_bounds",
                  "FAILED test_t1_bounds"):  # fmt: skip
        assert shown in asked
    assert '"problem_description"' in json.dumps(fm.requests[0].body["response_format"])
    # the agent worked on its own code through the gateway, under its unit token only; its
    # problem statement is DGM's: what the agent is made of, then what to implement
    agent_calls = fm.requests[2:]
    statement = agent_calls[0].body["messages"][1]["content"]
    assert "smallest correct change" not in statement
    assert statement.startswith("# The coding agent") and "# To implement" in statement
    assert DIAGNOSIS["problem_description"] in statement
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
        None, None, None, None, None, None, None, datetime.now(UTC),
    )  # fmt: skip


class Draws(random.Random):
    """A random source whose first draws are given: `random()` returns them in turn."""

    def __init__(self, *draws: float):
        super().__init__(0)
        self.draws = list(draws)

    def random(self) -> float:
        return self.draws.pop(0) if self.draws else super().random()


def test_dgm_entry_rules():
    """choose_selfimproves: `len(empty_ids) >= 0.1 * num_total_ids and random.random() < 0.25`
    -> solve_empty_patches; `random.random() < 0.25` -> solve_stochasticity; a context overflow
    among `empty_ids + unresolved_ids` `and random.random() < 0.25` -> solve_contextlength;
    else `random.choice(unresolved_ids)`."""
    ten = [evaluation(f"t{i}", EvalStatus.RESOLVED) for i in range(8)]
    failed = [evaluation("u1", EvalStatus.UNRESOLVED), evaluation("u2", EvalStatus.TIMEOUT)]
    unresolved = [*ten, *failed]
    with_empty = [*ten, evaluation("e", EvalStatus.EMPTY), evaluation("u", EvalStatus.UNRESOLVED)]
    # one empty patch in ten is 10%: the empty-patch entry, a quarter of the time
    assert choose_entry(with_empty, Draws(0.24)) == "solve_empty_patches"
    assert choose_entry(with_empty, Draws(0.25, 0.24)) == "solve_stochasticity"
    # one in eleven is under 10%: no draw is spent on it
    eleven = [*with_empty, evaluation("t9", EvalStatus.RESOLVED)]
    assert choose_entry(eleven, Draws(0.24)) == "solve_stochasticity"
    # context length: only when a task it did not solve overflowed, with probability 0.25
    overflowed = {("b", "u1")}
    assert choose_entry(unresolved, Draws(0.3, 0.24), overflowed=overflowed) == (
        "solve_contextlength"
    )
    assert choose_entry(unresolved, Draws(0.3, 0.25), overflowed=overflowed) in ("b/u1", "b/u2")
    solved_overflow = {("b", "t0")}  # a resolved task that overflowed does not count
    assert choose_entry(unresolved, Draws(0.3, 0.0), overflowed=solved_overflow) in (
        "b/u1", "b/u2"
    )  # fmt: skip
    # else a task it did not solve; harness errors say nothing about the agent
    assert choose_entry(unresolved, Draws(0.3)) in ("b/u1", "b/u2")
    # nothing unsolved: a random task of its own, as HGM's choose_entry does (DGM's fails)
    assert choose_entry(ten, Draws(0.3)).startswith("b/t")
    assert choose_entry([evaluation("x", EvalStatus.ERROR)], Draws(0.3)) is None
    # Polyglot: no special entries; an empty or failed task, else any task
    assert choose_entry(with_empty, Draws(), rules="polyglot") in ("b/e", "b/u")
    assert choose_entry(ten, Draws(), rules="polyglot").startswith("b/t")


@pytest.mark.parametrize(
    ("empty", "overflow", "expected"),
    [  # hand-computed from the rule above: each entry takes 0.25 of what is left
        (False, False, {"stochasticity": 0.25, "task": 0.75}),
        (True, False, {"empty_patches": 0.25, "stochasticity": 0.1875, "task": 0.5625}),
        (False, True, {"stochasticity": 0.25, "contextlength": 0.1875, "task": 0.5625}),
        (True, True, {"empty_patches": 0.25, "stochasticity": 0.1875, "contextlength": 0.140625,
                      "task": 0.421875}),
    ],
)  # fmt: skip
def test_entry_frequencies_over_10000_draws_are_dgms(empty, overflow, expected):
    evaluations = [evaluation(f"t{i}", EvalStatus.RESOLVED) for i in range(7)]
    evaluations += [evaluation("u1", EvalStatus.UNRESOLVED), evaluation("u2", EvalStatus.TIMEOUT)]
    evaluations.append(evaluation("e", EvalStatus.EMPTY if empty else EvalStatus.RESOLVED))
    overflowed = {("b", "u1")} if overflow else set()
    rng = random.Random(14)
    drawn = Counter(
        choose_entry(evaluations, rng, overflowed=overflowed) for _ in range(10_000)
    )  # fmt: skip
    kinds = Counter()
    for entry, count in drawn.items():
        kinds[entry.removeprefix("solve_") if entry.startswith("solve_") else "task"] += count
    assert set(kinds) == set(expected)
    for kind, share in expected.items():
        assert abs(kinds[kind] / 10_000 - share) < 0.01, (kind, kinds[kind])
    assert {e for e in drawn if e.startswith("b/")} == {"b/u1", "b/u2"}


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
    assert result.reason == (
        "the diff touches files outside its folder or in .git: ../../etc/cron.d/x"
    )
    [event] = [e for e in archive.events() if e.kind == "expansion_failed"]
    assert b"root evil" in archive.blobs.get(event.payload["patch_blob"])


def overflowing(archive: Archive, agent: Path) -> str:
    """A parent with an empty patch in one task of ten and a context overflow on another."""
    parent = archive.add_node(agent, origin=Origin.HUMAN, proposal="a parent")
    overflow = json.dumps({"type": "model_error", "kind": "context_overflow"}).encode()
    archive.record_evaluations(
        parent.id,
        [
            EvaluationResult("toy", "e1", EvalStatus.EMPTY, trajectory=b'{"type": "stop"}'),
            EvaluationResult("toy", "t1", EvalStatus.UNRESOLVED, trajectory=overflow),
            *[EvaluationResult("toy", f"ok{i}", EvalStatus.RESOLVED) for i in range(8)],
        ],
    )
    return parent.id


def test_every_special_entry_asks_the_diagnosis_model_its_own_question(world):
    """DGM asks the diagnosis model for special entries too, each with a prompt of its own
    (get_diagnose_prompt_swe's special cases), and makes the answer the problem statement."""
    archive, _, fm, run = world
    parent = overflowing(archive, SEED_AGENT)
    draws = {
        "solve_empty_patches": Draws(0.1),
        "solve_stochasticity": Draws(0.5, 0.1),
        "solve_contextlength": Draws(0.5, 0.5, 0.1),
    }
    asked = {}
    for entry, rng in draws.items():
        answer = {**DIAGNOSIS, "problem_description": f"Handle {entry} better."}
        answer.pop("log_summarization")  # not asked of a special entry
        fm.push(Reply(json.dumps(answer)), Reply("Nothing to change."))
        seen = len(fm.requests)
        result = run(parent, rng=rng)
        assert result.entry == entry and result.reason.startswith("empty diff")
        system, question = (m["content"] for m in fm.requests[seen].body["messages"][:2])
        assert "def call_tool" in system  # the agent's code, every time
        asked[entry] = question
        agent_task = fm.requests[seen + 1].body["messages"][1]["content"]
        assert f"Handle {entry} better." in agent_task
    assert len(set(asked.values())) == 3
    assert "empty patch" in asked["solve_empty_patches"]
    assert "stochastic" in asked["solve_stochasticity"]
    assert "context-length error" in asked["solve_contextlength"]
    failures = [e for e in archive.events() if e.kind == EventKind.EXPANSION_FAILED]
    assert [e.payload["entry"] for e in failures] == list(draws)


def test_a_parent_that_solved_every_task_still_expands(world, tmp_path):
    archive, _, fm, run = world
    parent = archive.add_node(SEED_AGENT, origin=Origin.HUMAN, proposal="solves all")
    solved = [EvaluationResult("toy", f"ok{i}", EvalStatus.RESOLVED) for i in range(4)]
    archive.record_evaluations(parent.id, solved)
    fm.push(Reply(json.dumps(DIAGNOSIS)), Reply("", [ToolCall("editor", REWORD)]), Reply("ok"))
    result = run(parent.id)
    assert result.entry.startswith("toy/ok") and result.child_id and not result.reason
    asked = fm.requests[0].body["messages"][1]["content"]
    assert "resolved" in asked


def test_a_failed_diagnosis_is_recorded_with_what_it_cost(world):
    archive, _, fm, run = world
    fm.push(*[Reply("no JSON here", input_tokens=1000, output_tokens=50)] * 3)
    result = run()
    assert result.child_id is None and result.reason.startswith("diagnosis failed")
    [event] = [e for e in archive.events() if e.kind == EventKind.EXPANSION_FAILED]
    assert event.payload["fm_tokens"] == 3 * 1050
    assert event.payload["fm_cost_usd"] > 0  # gpt-4o has a price
    assert event.payload["fm_cost_usd"] == pytest.approx(
        sum(c.cost_usd for c in archive.fm_calls())
    )
    assert len(fm.requests) == 3  # no agent ran


SLOW_AGENT = """
import pathlib, sys, time
out = pathlib.Path(sys.argv[sys.argv.index("--out") + 1])
out.mkdir(parents=True, exist_ok=True)
{write}
time.sleep(600)
"""
NOTE_PATCH = (  # escaped: it is written into the agent's source
    "diff --git a/NOTES.md b/NOTES.md\\nnew file mode 100644\\n"
    "--- /dev/null\\n+++ b/NOTES.md\\n@@ -0,0 +1 @@\\n+notes\\n"
)


def test_a_self_modification_cut_by_its_deadline_is_an_expansion_result(world, tmp_path):
    """Out of time, the agent's rewrite is judged on what it had written: nothing is an
    `expansion_failed`, a patch makes a child. Neither is a harness failure."""
    archive, _, fm, run = world
    limits = AgentLimits(max_steps=10, timeout_s=3)
    outcomes = []
    for name, write in (
        ("idle", ""),
        ("wrote", f"(out / 'patch.diff').write_text('{NOTE_PATCH}')"),
    ):
        folder = write_files(tmp_path / name, {"coding_agent.py": SLOW_AGENT.format(write=write)})
        parent = archive.add_node(folder, origin=Origin.HUMAN, proposal=name)
        archive.record_evaluations(
            parent.id, [EvaluationResult("toy", "t1", EvalStatus.UNRESOLVED)]
        )
        fm.push(Reply(json.dumps(DIAGNOSIS)))
        outcomes.append(run(parent.id, agent=limits, test_command=["true"]))
    idle, wrote = outcomes
    assert idle.child_id is None and idle.reason.startswith("empty diff (agent: timeout")
    assert wrote.child_id and not wrote.reason, wrote.reason
    assert archive.git.read_file(archive.node(wrote.child_id).commit, "NOTES.md") == b"notes\n"
