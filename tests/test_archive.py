"""The archive on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from archive import (
    Archive,
    EvalStatus,
    EvaluationResult,
    FMCall,
    NodeStatus,
    Origin,
    Score,
)
from archive.errors import (
    AmbiguousNode,
    ArchiveError,
    ArchiveExists,
    ArchiveNotFound,
    SchemaTooNew,
    UnknownNode,
)
from archive.events import EventKind
from archive.records import HELD_OUT_STAGE

R, U, E, ERR, T = (
    EvalStatus.RESOLVED,
    EvalStatus.UNRESOLVED,
    EvalStatus.EMPTY,
    EvalStatus.ERROR,
    EvalStatus.TIMEOUT,
)


def grow(archive: Archive, agent_dir: Path, parent: str | None, text_: str, **kw):
    (agent_dir / "agent.py").write_text(text_)
    return archive.add_node(agent_dir, parent=parent, **kw)


def test_add_nodes_git_first_then_row(archive, agent_dir):
    seed = archive.add_node(agent_dir, origin=Origin.SEED, proposal="the seed agent")
    child = grow(
        archive,
        agent_dir,
        seed.id,
        "v2\n",
        origin=Origin.SELF_MODIFICATION,
        proposal="Add retries\n\nThe agent gave up after one failure.",
        meta={"diff_lines": 3},
    )
    assert archive.node(child.id) == child
    assert child.parent_id == seed.id and child.meta == {"diff_lines": 3}
    assert child.summary == "Add retries"
    assert archive.git.commit_infos([child.commit])[child.commit].parents == (seed.commit,)
    assert archive.git.read_file(child.commit, "agent.py") == b"v2\n"
    assert archive.git.node_refs() == {seed.id: seed.commit, child.id: child.commit}
    assert [n.id for n in archive.nodes()] == [seed.id, child.id]
    kinds = [(e.kind, e.node_id) for e in archive.events()]
    assert kinds == [("node_added", seed.id), ("node_added", child.id)]
    assert archive.check().ok


def test_same_code_same_tree(archive, agent_dir):
    a = archive.add_node(agent_dir)
    b = archive.add_node(agent_dir, parent=a.id)
    assert a.tree == b.tree and a.commit != b.commit


def test_unknown_parent_writes_nothing(archive, agent_dir):
    with pytest.raises(UnknownNode):
        archive.add_node(agent_dir, parent="f" * 32)
    assert archive.nodes() == [] and archive.git.node_refs() == {}


def test_resolve_prefixes(archive, agent_dir, monkeypatch):
    ids = iter(["abcd1111" + "0" * 24, "abcd2222" + "0" * 24, "ffff0000" + "0" * 24])
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(next(ids)))
    a = archive.add_node(agent_dir)
    b = archive.add_node(agent_dir)
    c = archive.add_node(agent_dir)
    assert archive.resolve("abcd1") == a.id
    assert archive.resolve("ABCD2") == b.id
    assert archive.resolve(c.id) == c.id
    with pytest.raises(AmbiguousNode, match="ambiguous"):
        archive.resolve("abcd")
    with pytest.raises(UnknownNode, match="no node"):
        archive.resolve("0123")
    for bad in ("abc", "zzzz", "ab%d", "a" * 33):
        with pytest.raises(UnknownNode, match="not a node id"):
            archive.resolve(bad)


def test_evaluations_attempts_and_scores(archive, agent_dir):
    node = archive.add_node(agent_dir)
    first = archive.record_evaluations(
        node.id,
        [
            EvaluationResult("swe", "t1", R, stage="small", log=b"ok", patch=b"diff"),
            EvaluationResult("swe", "t2", U, stage="small", duration_s=3.5, cost_usd=0.25),
            EvaluationResult("swe", "t3", ERR, stage="small"),  # harness failure: not counted
            EvaluationResult("polyglot", "py/a", E, model="claude"),
        ],
    )
    assert [e.attempt for e in first] == [1, 1, 1, 1]
    assert first[0].resolved and not first[1].resolved
    assert archive.blobs.get(first[0].log_blob) == b"ok"
    again = archive.record_evaluations(
        node.id,
        [
            EvaluationResult("swe", "t1", T, stage="medium"),
            EvaluationResult("swe", "t1", R, stage="medium"),
        ],
    )
    assert [e.attempt for e in again] == [2, 3]
    scores = archive.scores(node.id)
    assert scores.by_stage == {
        ("swe", "small"): Score(1, 2),
        ("swe", "medium"): Score(1, 2),
        ("polyglot", "default"): Score(0, 1),
    }
    assert scores.by_benchmark == {"swe": Score(2, 4), "polyglot": Score(0, 1)}
    assert scores.overall == Score(2, 5) and scores.overall.value == 0.4
    stored = archive.evaluations(node.id)
    assert len(stored) == 6
    assert {(e.task, e.attempt, e.status) for e in stored if e.task == "t1"} == {
        ("t1", 1, R),
        ("t1", 2, T),
        ("t1", 3, R),
    }
    assert stored == sorted(stored, key=lambda e: (e.benchmark, e.task, e.attempt))


def test_evaluation_of_unknown_node_is_refused(archive):
    with pytest.raises(UnknownNode):
        archive.record_evaluations("0" * 32, [EvaluationResult("b", "t", R)])


def test_summaries_children_and_scores_searched_and_held_out_apart(archive, agent_dir):
    root = archive.add_node(agent_dir, origin=Origin.SEED)
    a = grow(archive, agent_dir, root.id, "a", origin=Origin.SELF_MODIFICATION)
    b = grow(
        archive, agent_dir, root.id, "b", origin=Origin.SELF_MODIFICATION, status=NodeStatus.PENDING
    )
    c = grow(archive, agent_dir, a.id, "c", origin=Origin.SELF_MODIFICATION)
    archive.record_evaluations(
        root.id, [EvaluationResult("b", f"t{i}", R if i < 2 else U) for i in range(4)]
    )
    archive.record_evaluations(
        a.id, [EvaluationResult("b", f"t{i}", R if i < 3 else U) for i in range(4)]
    )
    archive.record_evaluations(b.id, [EvaluationResult("b", "t0", R)])  # 1.0 but pending
    archive.record_evaluations(
        c.id, [EvaluationResult("b", "t0", R), EvaluationResult("b", "t1", U)]
    )
    by_id = {s.id: s for s in archive.summaries()}
    assert (by_id[root.id].children, by_id[root.id].admitted_children) == (2, 1)
    assert (by_id[a.id].children, by_id[a.id].admitted_children) == (1, 1)
    assert by_id[c.id].children == 0
    assert by_id[a.id].score == Score(3, 4)
    assert by_id[b.id].score == Score(1, 1) and by_id[b.id].held_out == Score()
    held = [EvaluationResult("b", f"h{i}", R, stage=HELD_OUT_STAGE) for i in range(2)]
    archive.record_evaluations(a.id, held)
    a_row = next(s for s in archive.summaries() if s.id == a.id)
    assert (a_row.score, a_row.held_out) == (Score(3, 4), Score(2, 2))
    scores = archive.scores(a.id)
    assert (scores.searched, scores.held_out, scores.overall) == (Score(3, 4), Score(2, 2),
                                                                  Score(5, 6))  # fmt: skip
    archive.set_status(b.id, NodeStatus.ADMITTED, reason="approved")
    root_row = next(s for s in archive.summaries() if s.id == root.id)
    assert (root_row.children, root_row.admitted_children) == (2, 2)
    archive.set_status(a.id, NodeStatus.REJECTED)
    root_row = next(s for s in archive.summaries() if s.id == root.id)
    assert root_row.admitted_children == 1
    assert archive.check().ok
    assert archive.node(b.id).status is NodeStatus.ADMITTED
    assert archive.events()[-2].payload == {"status": "admitted", "reason": "approved"}
    lineage = archive.lineage()
    assert lineage.path_to_root(c.id) == [c.id, a.id, root.id]
    assert lineage.clade(a.id) == {a.id, c.id}


def test_runs_reviews_and_fm_usage(archive, agent_dir):
    run = archive.create_run("quickstart", {"selector": "cmp", "workers": 2})
    assert len(run.config_hash) == 64
    node = archive.add_node(agent_dir, run_id=run.id, origin=Origin.SEED)
    archive.record_fm_call(
        FMCall(
            "anthropic",
            "claude-x",
            1200,
            300,
            0.02,
            1.5,
            run_id=run.id,
            node_id=node.id,
            unit_id="u1",
        )
    )
    archive.record_fm_call(FMCall("openai", "gpt-y", 10, 5, 0.001, 0.2, node_id=node.id))
    archive.record_evaluations(
        node.id, [EvaluationResult("b", "t", R, model="local-smol")], run_id=run.id
    )
    assert archive.models_used([node.id]) == {node.id: ["claude-x", "gpt-y", "local-smol"]}
    review = archive.add_review(
        node.id,
        reviewer="policy:default",
        kind="policy",
        decision="needs-approval",
        reason="touches the sandbox",
    )
    archive.add_review(
        node.id, reviewer="alice", kind="human", decision="approve", reason="looks fine"
    )
    assert [r.decision for r in archive.reviews(node.id)] == ["needs-approval", "approve"]
    assert archive.reviews(node.id)[0] == review
    archive.finish_run(run.id, "stopped", "budget usd spent")
    stored = archive.run(run.id)
    assert (stored.status, stored.stop_reason) == ("stopped", "budget usd spent")
    assert stored.finished_at is not None and stored.config == {"selector": "cmp", "workers": 2}
    kinds = [e.kind for e in archive.events()]
    assert kinds == [
        "run_started",
        "node_added",
        "evaluations_recorded",
        "review_added",
        "review_added",
        "run_finished",
    ]


def test_event_log_is_append_only(archive):
    archive.append_event(EventKind.HELD_OUT, {"resolved": 1, "attempted": 2})
    for statement in ("UPDATE events SET kind = 'x'", "DELETE FROM events"):
        with pytest.raises(ArchiveError, match="append-only"), archive._write() as conn:
            conn.execute(text(statement))
    assert [e.payload for e in archive.events()] == [{"resolved": 1, "attempted": 2}]


def test_an_event_is_written_only_as_its_kind_declares_it(archive):
    with pytest.raises(ValueError, match="is not a valid EventKind"):
        archive.append_event("note", {"text": "hello"})
    with pytest.raises(ValueError, match="a held_out event needs 'attempted'"):
        archive.append_event(EventKind.HELD_OUT, {"resolved": 1})
    with pytest.raises(ValueError, match="a held_out event has no field 'score'"):
        archive.append_event(EventKind.HELD_OUT, {"resolved": 1, "attempted": 2, "score": 0.5})
    assert archive.events() == []


def test_timestamps_are_utc_aware(archive, agent_dir):
    node = archive.add_node(agent_dir)
    stored = archive.node(node.id)
    assert stored.created_at.utcoffset().total_seconds() == 0
    assert stored.created_at == node.created_at


def test_reopen_sees_everything(tmp_path, agent_dir, database_url):
    with Archive.init(tmp_path / "a", database_url=database_url) as arc:
        node = arc.add_node(agent_dir)
    with Archive.open(tmp_path / "a") as arc:
        assert arc.node(node.id) == node


def test_init_refuses_existing_and_nonempty(tmp_path, database_url):
    Archive.init(tmp_path / "a", database_url=database_url).close()
    with pytest.raises(ArchiveExists, match="already holds an archive"):
        Archive.init(tmp_path / "a")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(ArchiveExists, match="not empty"):
        Archive.init(tmp_path / "busy")
    if database_url:  # the same database cannot hold two archives
        with pytest.raises(ArchiveExists, match="database already holds"):
            Archive.init(tmp_path / "b", database_url=database_url)
        assert not (tmp_path / "b").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "busy"]


def test_missing_archive(tmp_path):
    with pytest.raises(ArchiveNotFound, match="dgm init"):
        Archive.open(tmp_path / "nothing")


def test_newer_schema_is_refused(archive, tmp_path):
    with archive._write() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    archive.close()
    with pytest.raises(SchemaTooNew, match="newer than this dgm"):
        Archive.open(archive.root)


def test_check_detects_running_totals_that_disagree(archive, agent_dir):
    root = archive.add_node(agent_dir)
    grow(archive, agent_dir, root.id, "child")
    archive.record_evaluations(root.id, [EvaluationResult("b", "t", R)])
    assert archive.check().ok
    with archive._write() as conn:
        conn.execute(text("UPDATE nodes SET attempted = attempted + 1, children = 5"))
    problems = " ".join(archive.check().problems)
    assert "score totals differ" in problems and "child counts differ" in problems


def test_missing_git_object_is_detected(archive, agent_dir):
    node = archive.add_node(agent_dir)
    obj = archive.root / "agents.git" / "objects" / node.commit[:2] / node.commit[2:]
    obj.chmod(0o644)
    obj.unlink()
    report = archive.check()
    assert not report.ok and "missing" in report.problems[0]


def test_a_score_s_interval_is_wilson_s_at_95_percent():
    """Wilson's score interval, (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n),
    z = 1.96: published values for 3/4, 5/10, 0/10 and 10/10; none when nothing was tried."""
    from archive.records import wilson_interval

    for (resolved, attempted), (low, high) in {
        (3, 4): (0.301, 0.954), (5, 10): (0.237, 0.763), (0, 10): (0.0, 0.278),
        (10, 10): (0.722, 1.0),
    }.items():  # fmt: skip
        found = wilson_interval(resolved, attempted)
        assert found is not None
        assert (round(found[0], 3), round(found[1], 3)) == (low, high)
    assert wilson_interval(0, 0) is None and Score(0, 0).interval is None
    # ten tasks say little: 6/10 and 4/10 overlap almost entirely
    assert Score(4, 10).interval[1] > Score(6, 10).interval[0]
