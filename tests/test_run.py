"""`dgm run` end to end: the scripted FM server, real Docker, the built-in suite; killed with
SIGKILL at random moments and continued, many times."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from archive import Archive, config_hash
from archive.events import EventKind
from dgm.cli.run_commands import live_view
from dgm.config import ConfigError, load_config
from dgm.engine import Engine
from dgm.fm.prices import price_of
from tests.conftest import DGM, run_dgm
from tests.scripted_fm import Reply, Request, ScriptedFM, ToolCall

DIAGNOSIS = {
    "log_summarization": "The agent stopped without editing anything.",
    "potential_improvements": "Check the diff before stopping.",
    "improvement_proposal": "Keep notes of what was tried.",
    "implementation_suggestion": "Write a notes file.",
    "problem_description": "Add a NOTES.md file describing the agent.",
}
_children = itertools.count(1)


def respond(request: Request) -> Reply:
    """Answers in any order: by the model the request names and where its conversation is."""
    body = request.body
    if body["model"] == "diagnosis-model":
        return Reply(json.dumps(DIAGNOSIS))
    if body["model"] == "judge-model":
        return Reply(json.dumps({"interesting": True, "reason": "nobody kept notes before"}))
    if body["messages"][-1]["role"] == "tool":
        return Reply("Done.")
    if body["model"] == "self-model":  # the parent rewrites itself: a new file each time
        note = {"command": "create", "path": f"NOTES-{next(_children)}.md", "file_text": "notes\n"}
        return Reply("", [ToolCall("editor", note)])
    # the agent on a task: a patch that solves nothing (a child with only empty patches would
    # not be kept: DGM's "compiled" rule)
    note = {"command": "create", "path": "TRIED.md", "file_text": "tried\n"}
    return Reply("", [ToolCall("editor", note)])


def write_config(tmp_path: Path, archive: Path | None = None, **extra: str) -> Path:
    stage = tmp_path / "stage.txt"
    stage.write_text("python/shout\npython/clamp\n")
    config = tmp_path / "run.yaml"
    config.write_text(
        f"name: e2e\narchive: {archive or tmp_path / 'archive'}\n"
        f"benchmark:\n  name: builtin-polyglot\n  stages:\n    - subset: {stage}\n"
        "models:\n  agent: agent-model\n  self_modification: self-model\n"
        "  diagnosis: diagnosis-model\n"
        "scheduler:\n  workers: 2\nagent:\n  max_steps: 4\nsandbox:\n  backend: docker\n"
        "budget:\n  expansions: 2\n" + "".join(f"{k}: {v}\n" for k, v in extra.items())
    )
    return config


@pytest.fixture
def fm(monkeypatch):
    with ScriptedFM(responder=respond) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-run")
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
        yield server


def unit_events(archive: Archive) -> list[tuple[str, str]]:
    """Units started, finished and failed (not where they ran)."""
    kinds = ("unit_started", "unit_finished", "unit_failed")
    return [(e.kind, e.payload["unit"]) for e in archive.events() if e.kind in kinds]


@pytest.mark.parametrize(
    ("mode", "selector"),
    [("async", "score_child_prop"), ("generational", "score_child_prop"), ("async", "cmp")],
)
def test_a_run_grows_the_archive_and_continues_without_repeating_work(
    base_image, fm, tmp_path, mode, selector
):
    overrides = [f"scheduler.mode={mode}", f"selector.name={selector}"]
    config = load_config(write_config(tmp_path), overrides)
    first = Engine(config).run()
    assert first.reason == "budget expansions spent"
    with Archive.open(tmp_path / "archive") as archive:
        nodes = archive.nodes()
        assert len(nodes) == 3 and {n.origin.value for n in nodes} == {"seed", "self-modification"}
        assert all(n.status.value == "admitted" for n in nodes)
        evaluations = [e for n in nodes for e in archive.evaluations(n.id)]
        assert sorted(e.task for e in evaluations) == ["python/clamp"] * 3 + ["python/shout"] * 3
        assert {e.stage for e in evaluations} == {"stage-1"}
        assert first.units_done >= 6 and first.units_done == 2 + 2 + 4
        [run] = archive.runs()
        assert (run.status, run.stop_reason) == ("finished", "budget expansions spent")
        done = unit_events(archive)
        # the seed is evaluated on its whole first stage before the first expansion
        seed = next(n.id for n in nodes if n.parent_id is None)[:8]
        first_expansion = next(i for i, (_, unit) in enumerate(done) if unit.startswith("expand"))
        seed_done = [
            i for i, (kind, unit) in enumerate(done)
            if kind == "unit_finished" and unit.startswith(f"evaluate {seed}")
        ]  # fmt: skip
        assert len(seed_done) == 2 and max(seed_done) < first_expansion
    again = Engine(config).run()  # the same configuration: the same run, nothing to do
    assert (again.run_id, again.units_done) == (first.run_id, 0)
    with Archive.open(tmp_path / "archive") as archive:
        assert unit_events(archive) == done
    status = json.loads(run_dgm("status", "--archive", str(tmp_path / "archive"), "--json").stdout)
    assert (status["name"], status["state"], status["units_done"]) == ("e2e", "finished", 8)
    assert status["nodes"] == 3 and status["in_flight"] == 0
    assert status["budget"]["expansions"] == {"limit": 2, "spent": 2}
    assert status["budget"]["evaluations"] == {"limit": None, "spent": 6}
    assert status["selector"] == {"name": selector, "params": {}}
    shown = run_dgm("status", "--archive", str(tmp_path / "archive")).stdout
    assert f"(by {selector}: " in shown and "budget expansions: 2 of 2" in shown


def test_novelty_in_code_space_embeds_every_agent_and_asks_a_judge_of_each_child(
    base_image, fm, tmp_path
):
    overrides = [
        "selector.name=novelty", "selector.params={space: code, judge: true, k: 2}",
        "models.judge=judge-model",
    ]  # fmt: skip
    config = load_config(write_config(tmp_path), overrides)
    outcome = Engine(config).run()
    assert outcome.reason == "budget expansions spent"
    with Archive.open(tmp_path / "archive") as archive:
        nodes = archive.nodes()
        children = sorted(n.id for n in nodes if n.parent_id)
        assert len(nodes) == 3 and len(children) == 2
        vectors = [archive.code_embedding(n.tree, "all-MiniLM-L6-v2") for n in nodes]
        assert all(v is not None and len(v) == 384 * 4 for v in vectors)
        assert len(set(vectors)) == 3  # each agent's code is its own
        judged = archive.events_of(outcome.run_id, EventKind.JUDGED)
        assert sorted(e.node_id for e in judged) == children
        assert {e.payload["model"] for e in judged} == {"judge-model"}
        assert all(e.payload["interesting"] for e in judged)
    asked = [r.body for r in fm.requests if r.body["model"] == "judge-model"]
    assert len(asked) == 2 and "NOTES-" in asked[0]["messages"][-1]["content"]
    assert asked[0]["response_format"]["type"] == "json_schema"
    again = Engine(config).run()  # nothing is embedded or judged twice
    assert again.units_done == 0
    assert len([r for r in fm.requests if r.body["model"] == "judge-model"]) == 2


def test_killed_at_random_moments_and_continued(base_image, fm, tmp_path):
    config = write_config(tmp_path)
    env = {**os.environ, "OPENAI_API_KEY": "sk-run", "OPENAI_BASE_URL": fm.openai_base_url}
    rng = random.Random(7)
    kills = 0
    for _ in range(5):  # killed at random moments, then left to finish
        process = subprocess.Popen(
            [DGM, "run", str(config)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            process.wait(timeout=rng.uniform(3, 12))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            continue
        break
    assert kills >= 3
    last = subprocess.run([DGM, "run", str(config)], env=env, capture_output=True, timeout=600)
    assert last.returncode == 0, last.stderr.decode()
    with Archive.open(tmp_path / "archive") as archive:
        assert archive.check().ok
        nodes = archive.nodes()
        evaluations = [(n.id, e.task, e.attempt) for n in nodes for e in archive.evaluations(n.id)]
        # no finished unit was run again: one attempt per node and task, none lost
        assert all(attempt == 1 for _, _, attempt in evaluations)
        counted = Counter((node, task) for node, task, _ in evaluations)
        assert set(counted.values()) == {1}
        usable = [n for n in nodes if n.status.value != "rejected"]
        assert len(counted) == 2 * len(usable)
        finished = Counter(
            unit
            for kind, unit in unit_events(archive)
            if kind == "unit_finished" and unit.startswith("evaluate")
        )
        assert set(finished.values()) == {1} and len(finished) == len(counted)
        [run] = archive.runs()
        assert run.status == "finished"
    # what the kills left running was reaped by the next start
    left = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=dgm.run={run.id}"], capture_output=True
    )
    assert left.stdout.strip() == b""


def test_the_answer_is_measured_on_held_out_tasks(base_image, fm, tmp_path):
    held = tmp_path / "held.txt"
    held.write_text("python/roman\n")
    path = write_config(tmp_path)
    config = load_config(path, ["budget.expansions=0", f"benchmark.held_out={held}"])
    shown: list[str] = []  # what the live display showed after each change

    def show(engine: Engine) -> None:
        console = Console(record=True, width=100, file=io.StringIO())
        console.print(live_view(engine))
        shown.append(console.export_text())

    outcome = Engine(config, on_change=show).run()
    assert (outcome.reason, outcome.units_done) == ("budget expansions spent", 2)
    assert outcome.held_out == (0, 1)  # the seed, on a task the search never saw
    assert "2 units done, 0 in flight, best 0/2" in shown[-3]
    assert "100% of budget expansions" in shown[-3]
    assert "measuring the answer on held-out tasks: 1/1" in shown[-1]
    status = json.loads(run_dgm("status", "--archive", str(tmp_path / "archive"), "--json").stdout)
    assert (status["best"]["resolved"], status["best"]["attempted"]) == (0, 2)  # searched only
    assert status["budget"]["evaluations"]["spent"] == 2
    assert status["held_out"] == {
        "id": status["best"]["id"], "resolved": 0, "attempted": 1, "score": 0.0,
        "interval": [0.0, 0.7935],  # one task says almost nothing
    }  # fmt: skip
    with Archive.open(tmp_path / "archive") as archive:
        [seed] = archive.nodes()
        stages = {e.task: e.stage for e in archive.evaluations(seed.id)}
        assert stages == {
            "python/clamp": "stage-1", "python/shout": "stage-1", "python/roman": "held-out"
        }  # fmt: skip
    tree = run_dgm("tree", "--archive", str(tmp_path / "archive")).stdout
    assert "score 0.000 (0/2; 95% 0.00-0.66)  held-out 0.000 (0/1; 95% 0.00-0.79)" in tree
    exported = run_dgm("export", "best", "--out", str(tmp_path / "best"), "--json",
                       "--archive", str(tmp_path / "archive"))  # fmt: skip
    assert json.loads(exported.stdout)["node"] == seed.id
    overlap = load_config(path, ["benchmark.held_out=small", "benchmark.stages=[{subset: small}]"])
    with pytest.raises(ConfigError, match=r"held-out task python/.* is also in a searched stage"):
        Engine(overlap).run()


def test_ctrl_c_finishes_the_units_in_flight_and_the_run_continues(base_image, fm, tmp_path):
    config = write_config(tmp_path)
    env = {**os.environ, "OPENAI_API_KEY": "sk-run", "OPENAI_BASE_URL": fm.openai_base_url}
    process = subprocess.Popen([DGM, "run", str(config)], env=env, stderr=subprocess.PIPE)
    log = None
    for _ in range(600):  # until the first unit has started
        logs = list((tmp_path / "archive" / "runs").glob("*.jsonl"))
        if logs and "unit_started" in logs[0].read_text():
            log = logs[0]
            break
        time.sleep(0.05)
    assert log is not None
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 0, process.stderr.read().decode()
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events[-1] == "run_finished"
    assert json.loads(log.read_text().splitlines()[-1])["status"] == "stopped"
    assert events.count("unit_started") == events.count("unit_finished")  # none abandoned
    status = json.loads(run_dgm("status", "--archive", str(tmp_path / "archive"), "--json").stdout)
    assert (status["state"], status["reason"]) == ("stopped", "interrupted")
    finished = subprocess.run([DGM, "run", str(config)], env=env, capture_output=True, timeout=600)
    assert finished.returncode == 0, finished.stderr.decode()
    status = json.loads(run_dgm("status", "--archive", str(tmp_path / "archive"), "--json").stdout)
    assert (status["state"], status["reason"]) == ("finished", "budget expansions spent")


@contextlib.contextmanager
def stalled_fm() -> Iterator[tuple[ScriptedFM, threading.Event]]:
    """The scripted FM holding every agent call until the event is set."""
    release = threading.Event()

    def stalled(request: Request) -> Reply:
        if request.body["model"] == "agent-model":
            release.wait(120)
        return respond(request)

    with ScriptedFM(responder=stalled) as fm:
        try:
            yield fm, release
        finally:
            release.set()


def until_agents_wait(fm: ScriptedFM, count: int = 2) -> None:
    """Until `count` agents (both workers' by default) are waiting on the FM."""
    for _ in range(1200):
        if sum(r.body["model"] == "agent-model" for r in fm.requests) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} agents never called the FM")


def test_a_second_ctrl_c_abandons_the_units_in_flight_and_they_run_again(base_image, tmp_path):
    with stalled_fm() as (fm, release):
        env = {**os.environ, "OPENAI_API_KEY": "sk-run", "OPENAI_BASE_URL": fm.openai_base_url}
        config = write_config(tmp_path)
        process = subprocess.Popen([DGM, "run", str(config)], env=env, stderr=subprocess.PIPE)
        until_agents_wait(fm)
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        # it does not wait for the stalled FM calls
        assert process.wait(timeout=20) == 0, process.stderr.read().decode()
        release.set()
        with Archive.open(tmp_path / "archive") as archive:
            events = unit_events(archive)
            assert [kind for kind, _ in events] == ["unit_started", "unit_started"]
            [seed] = archive.nodes()
            assert archive.evaluations(seed.id) == []  # killed sandboxes are no result
            [run] = archive.runs()
            assert (run.status, run.stop_reason) == ("stopped", "interrupted")
        left = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=dgm.run={run.id}"], capture_output=True
        )
        assert left.stdout.strip() == b""
        again = subprocess.run([DGM, "run", str(config)], env=env, capture_output=True, timeout=600)
        assert again.returncode == 0, again.stderr.decode()
        with Archive.open(tmp_path / "archive") as archive:
            evaluations = [e for n in archive.nodes() for e in archive.evaluations(n.id)]
            assert {e.attempt for e in evaluations} == {1} and len(evaluations) == 6


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small disk needs root")
def test_a_full_disk_stops_the_run_in_one_line_and_it_continues_once_space_is_freed(
    base_image, tmp_path
):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(disk)], check=True)
    filler = disk / "filler"
    requests = itertools.count(1)

    def filling(request: Request) -> Reply:
        if next(requests) == 4:  # mid-run: the disk fills up (as another program might)
            with filler.open("wb") as f, contextlib.suppress(OSError):
                for size in (1 << 20, 512):
                    while True:
                        f.write(b"\0" * size)
                        f.flush()
        return respond(request)

    try:
        with ScriptedFM(responder=filling) as fm:
            env = {**os.environ, "OPENAI_API_KEY": "sk-run", "OPENAI_BASE_URL": fm.openai_base_url}
            config = write_config(tmp_path, archive=disk / "archive")
            full = subprocess.run([DGM, "run", str(config)], env=env, capture_output=True)
            assert full.returncode == 2
            error = full.stderr.decode()
            assert "Traceback" not in error
            assert error.splitlines()[-1].startswith("dgm: error: a disk the run writes to is full")
            filler.unlink()
            again = subprocess.run([DGM, "run", str(config)], env=env, capture_output=True)
            assert again.returncode == 0, again.stderr.decode()
            with Archive.open(disk / "archive") as archive:
                assert archive.check().ok
                [run] = archive.runs()
                assert (run.status, run.stop_reason) == ("finished", "budget expansions spent")
                nodes = [n for n in archive.nodes() if n.status.value != "rejected"]
                evaluations = [(n.id, e.task) for n in nodes for e in archive.evaluations(n.id)]
                assert sorted(Counter(evaluations).values()) == [1] * 2 * len(nodes)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_budgets_stop_the_run_and_say_which(base_image, fm, tmp_path):
    path = write_config(tmp_path)
    first = Engine(load_config(path, ["budget.evaluations=1"])).run()
    assert (first.reason, first.units_done) == ("budget evaluations spent", 1)
    # raised on the command line, the same run goes on; a wall clock already spent stops it
    late = Engine(load_config(path, ["budget.evaluations=5", "budget.wall_clock=1s"])).run()
    assert (late.run_id, late.reason, late.units_done) == (
        first.run_id,
        "budget wall_clock spent",
        0,
    )
    priced = ["budget.usd=0.000001", "name=cheap", "models.agent=gpt-4o"]
    cheap = Engine(load_config(path, priced)).run()
    assert cheap.reason == "budget usd spent" and cheap.units_done >= 1


def test_run_takes_its_archive_from_the_command_line_or_the_environment(fm, tmp_path):
    config = write_config(tmp_path)  # its own archive: tmp_path / "archive"
    env = {**os.environ, "OPENAI_API_KEY": "sk-run", "OPENAI_BASE_URL": fm.openai_base_url}
    env.pop("DGM_ARCHIVE", None)
    nothing = ["--set", "budget.evaluations=0"]  # the run starts and stops at once
    given = subprocess.run(
        [DGM, "run", str(config), "--archive", str(tmp_path / "given"), *nothing],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert given.returncode == 0, given.stderr
    from_env = subprocess.run(
        [DGM, "run", str(config), *nothing], env={**env, "DGM_ARCHIVE": str(tmp_path / "env")},
        capture_output=True, text=True,
    )  # fmt: skip
    assert from_env.returncode == 0, from_env.stderr
    for folder in ("given", "env"):
        with Archive.open(tmp_path / folder) as archive:
            [run] = archive.runs()
            assert (run.name, run.stop_reason) == ("e2e", "budget evaluations spent")
    assert not (tmp_path / "archive").exists()


def test_flagged_children_wait_for_a_person_while_the_run_goes_on(
    base_image, tmp_path, monkeypatch
):
    # issue 15: "with `high at admit waits for a person`: flagged children never become
    # parents until approved; `dgm review approve` from another process while the run goes
    # on lets them in; a rejected one never counts"
    edits: list[list[ToolCall]] = [
        [  # a better agent that also opens a socket: high, approved
            ToolCall("editor", {
                "command": "str_replace", "path": "coding_agent.py",
                "old_str": "You are an expert software engineer",
                "new_str": "You are a careful expert software engineer",
            }),
            ToolCall("editor", {
                "command": "create", "path": "probe.py",
                "file_text": "import socket\n\n\ndef probe():\n"
                "    return socket.create_connection(('example.com', 80))\n",
            }),
        ],
        [  # reads a credential: high, rejected
            ToolCall("editor", {
                "command": "create", "path": "keys.py",
                "file_text": "import os\n\nTOKEN = os.environ['GITHUB_TOKEN']\n",
            }),
        ],
    ]  # fmt: skip
    conversations = itertools.count()

    def responder(request: Request) -> Reply:
        body = request.body
        if body["model"] == "review-model":
            return Reply(json.dumps({"risk": "low", "reasons": ["reads fine"], "agreement": []}))
        if body["model"] == "self-model" and body["messages"][-1]["role"] != "tool":
            n = next(conversations)  # one worker: conversations come one after another
            if n < len(edits):
                return Reply("", edits[n])
        better = "a careful expert" in json.dumps(body["messages"][0])
        if body["model"] == "agent-model" and better and body["messages"][-1]["role"] != "tool":
            solution = "def shout(text):\n    return text.upper() + '!'\n"
            solved = {"command": "create", "path": "shout.py", "file_text": solution}
            return Reply("", [ToolCall("editor", solved)])
        return respond(request)

    stage = tmp_path / "shout.txt"
    stage.write_text("python/shout\n")
    archive_dir = tmp_path / "archive"
    config = load_config(
        write_config(tmp_path),
        [
            f"benchmark.stages=[{{subset: {stage}}}]", "scheduler.workers=1", "selector.name=best",
            "budget.expansions=5", "review.model=review-model",
        ],
    )  # fmt: skip
    with ScriptedFM(responder=responder) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-run")
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        outcome = {}
        running = threading.Thread(target=lambda: outcome.update(end=Engine(config).run()))
        running.start()

        def awaiting(count: int) -> list[str]:
            for _ in range(1200):
                time.sleep(0.1)
                if not running.is_alive():
                    break
                if not (archive_dir / "archive.db").exists():
                    continue
                with Archive.open(archive_dir) as archive:
                    held = [n.id for n in archive.nodes() if n.status.value == "awaiting-approval"]
                if len(held) >= count:
                    return held
            raise AssertionError("no child waits for a person")

        [better] = awaiting(1)
        # the run goes on with everything else: the second flagged child comes meanwhile
        [other] = [n for n in awaiting(2) if n != better]
        listed = json.loads(run_dgm("review", "list", "--json", archive=archive_dir).stdout)
        assert {row["node"] for row in listed} == {better, other}
        approved = run_dgm(
            "review", "approve", better[:8], "--reason", "probe is never called", "--as", "alice",
            archive=archive_dir,
        )  # fmt: skip
        assert approved.returncode == 0, approved.stderr
        rejected = run_dgm(
            "review", "reject", other[:8], "--reason", "reads the API key", archive=archive_dir,
            env={"DGM_REVIEWER": "bob"},
        )  # fmt: skip
        assert rejected.returncode == 0, rejected.stderr
        running.join(600)
    end = outcome["end"]
    assert end.reason == "budget expansions spent" and end.awaiting == 0
    with Archive.open(archive_dir) as archive:
        nodes = {n.id: n for n in archive.nodes()}
        assert nodes[better].status.value == "admitted"
        assert nodes[other].status.value == "rejected"
        [approval] = [r for r in archive.reviews(better) if r.kind == "human"]
        assert (approval.reviewer, approval.tree) == ("alice", nodes[better].tree)
        [refusal] = [r for r in archive.reviews(other) if r.kind == "human"]
        assert refusal.reviewer == "bob"
        for flagged in (better, other):
            [review] = [r for r in archive.reviews(flagged) if r.kind == "automated"]
            assert review.risk == "high" and review.reviewer == "static+fm"
            assert review.details["fm"]["tokens"] > 0
        started = [e for e in archive.events() if e.kind == "unit_started"]
        expansions_of = Counter(e.payload["unit"].split()[1] for e in started
                                if e.payload["unit"].startswith("expand"))  # fmt: skip
        # the approved child became a parent (the best score), only after the approval
        assert expansions_of[better[:8]] >= 1
        assert all(
            e.created_at > approval.created_at for e in started
            if e.payload["unit"] == f"expand {better[:8]}"
        )  # fmt: skip
        # the rejected one never counts: no parent, no answer, not among its parent's children
        assert other[:8] not in expansions_of
        assert end.best == better and not [n for n in nodes.values() if n.parent_id == other]
        assert archive.verify_audit().first_bad is None
        gates = [
            (e.node_id, e.payload["gate"], e.payload["state"])
            for e in archive.audit_entries() if e.kind == "gate"
        ]  # fmt: skip
        assert (better, "admit", "waiting") in gates and (better, "admit", "passed") in gates
        assert (other, "admit", "passed") not in gates
    status = json.loads(run_dgm("status", "--json", archive=archive_dir).stdout)
    assert status["awaiting_review"] == 0 and status["best"]["id"] == better


def test_a_run_keeps_its_resolved_config_with_its_hash_and_prices(base_image, fm, tmp_path):
    archive = tmp_path / "archive"
    config = str(write_config(tmp_path))
    first = run_dgm("run", config, "--set", "models.agent=gpt-4o", "--set", "scheduler.workers=1")
    assert first.returncode == 0, first.stderr
    kept = json.loads(run_dgm("status", "--config", "--json", archive=archive).stdout)
    assert kept["config"]["models"]["agent"] == "gpt-4o"  # as --set made it
    assert kept["config"]["scheduler"]["workers"] == 1
    assert kept["config_hash"] == config_hash(kept["config"])
    # what metering used: a known price for gpt-4o, none for the scripted models
    assert kept["prices"]["gpt-4o"] == list(price_of("gpt-4o"))
    assert kept["prices"]["self-model"] is None and set(kept["prices"]) == {
        "gpt-4o", "self-model", "diagnosis-model",
    }  # fmt: skip
    # continued with another setting: the run's config is the new one, each session's hash kept
    again = run_dgm("run", config, "--set", "models.agent=gpt-4o", "--set", "scheduler.workers=2")
    assert again.returncode == 0, again.stderr
    now = json.loads(run_dgm("status", "--config", "--json", archive=archive).stdout)
    assert now["config"]["scheduler"]["workers"] == 2
    assert [s["config_hash"] for s in now["sessions"]] == [kept["config_hash"], now["config_hash"]]
    shown = run_dgm("status", "--config", archive=archive).stdout
    assert f"run e2e: config {now['config_hash']}" in shown and "workers: 2" in shown
    assert "gpt-4o: 2.5 / 10" in shown and "self-model: unknown" in shown, shown
    assert "sessions:" in shown
    exported = run_dgm("export", "best", "--out", str(tmp_path / "best"), archive=archive)
    assert exported.returncode == 0, exported.stderr
    provenance = json.loads((tmp_path / "best" / "provenance.json").read_text())
    assert provenance["run"]["config"] == now["config"]
    assert provenance["run"]["config_hash"] == now["config_hash"] == provenance["config_hash"]
    assert provenance["run"]["prices"] == now["prices"]
