"""The audit log: a hash chain whose head is also kept in the git store. An attacker with the
database (the append-only triggers dropped) edits, deletes, reorders, truncates or rewrites
entries; each is found, on SQLite and PostgreSQL, and the untouched log verifies."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from archive import Archive, Origin, audit
from dgm.review.service import decide, review_node
from dgm.review.static import StaticReviewer
from tests.conftest import run_dgm

DROP_TRIGGERS = {
    "sqlite": ["DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete"],
    "postgresql": ["DROP TRIGGER audit_log_append_only ON audit_log"],
}


@pytest.fixture
def logged(archive: Archive, tmp_path: Path) -> Archive:
    """Six entries: a review, a gate passage, a decision, a second review, an export."""
    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "agent.py").write_text("def run(task):\n    return task\n")
    root = archive.add_node(agent, origin=Origin.SEED)
    (agent / "agent.py").write_text("def run(task):\n    return task.strip()\n")
    child = archive.add_node(agent, parent=root.id, proposal="strip the task")
    review_node(archive, child.id, [StaticReviewer()])
    archive.record_audit("gate", {"gate": "admit", "state": "passed"}, actor="policy",
                         node_id=child.id)  # fmt: skip
    decide(archive, child.id, approve=True, who="ada", reason="read it")
    review_node(archive, child.id, [StaticReviewer()])
    archive.record_audit("export", {"tree": child.tree}, actor="ada", node_id=child.id)
    archive.record_audit("gate", {"gate": "export", "state": "passed"}, actor="policy")
    return archive


def attack(archive: Archive, *statements: str) -> None:
    with archive._engine.begin() as conn:
        for statement in (*DROP_TRIGGERS[conn.dialect.name], *statements):
            conn.execute(text(statement))


def test_the_untouched_log_verifies_and_shows_every_kind(logged):
    entries = logged.audit_entries()
    assert [e.kind for e in entries] == ["review", "gate", "decision", "review", "export", "gate"]
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[2].actor == "ada" and entries[2].payload["decision"] == "approve"
    assert entries[0].payload["risk"] == "low" and entries[0].payload["tree"]
    assert logged.verify_audit().ok
    head = audit.parse_head(logged.git.read_ref_blob(audit.HEAD_REF).decode())
    assert head == (6, entries[-1].hash)


def test_the_database_refuses_edits_and_deletes(logged):
    for statement in ("UPDATE audit_log SET actor = 'eve'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"), logged._engine.begin() as conn:
            conn.execute(text(statement))
    assert logged.verify_audit().ok


@pytest.mark.parametrize(
    ("kind", "statements", "first_bad", "words"),
    [
        ("edit", ["UPDATE audit_log SET actor = 'eve' WHERE seq = 3"], 3, "edited"),
        (
            "edit payload",
            ['UPDATE audit_log SET payload = \'{"decision": "approve"}\' WHERE seq = 1'],
            1,
            "edited",
        ),
        ("delete", ["DELETE FROM audit_log WHERE seq = 2"], 2, "missing"),
        (
            "reorder",
            [
                "UPDATE audit_log SET seq = 100 WHERE seq = 2",
                "UPDATE audit_log SET seq = 2 WHERE seq = 3",
                "UPDATE audit_log SET seq = 3 WHERE seq = 100",
            ],
            2,
            "does not follow",
        ),
        ("truncate the end", ["DELETE FROM audit_log WHERE seq >= 5"], 5, "truncated"),
        ("truncate all", ["DELETE FROM audit_log"], 1, "truncated"),
    ],
)
def test_tampering_is_found(logged, kind, statements, first_bad, words):
    attack(logged, *statements)
    report = logged.verify_audit()
    assert not report.ok, kind
    assert report.first_bad == first_bad, report.problem
    assert words in report.problem


def test_a_consistently_rewritten_chain_is_found_by_its_head(logged):
    """The attacker knows the hash and rewrites every entry after the one changed."""
    entries = logged.audit_entries()
    prev = audit.GENESIS
    statements = []
    for e in entries:
        actor = "eve" if e.seq == 3 else e.actor
        digest = audit.entry_hash(e.seq, e.kind, e.node_id, e.run_id, actor, e.payload, e.at, prev)
        statements.append(
            f"UPDATE audit_log SET actor = '{actor}', prev = '{prev}', hash = '{digest}' "
            f"WHERE seq = {e.seq}"
        )
        prev = digest
    attack(logged, *statements)
    report = logged.verify_audit()
    assert not report.ok and report.first_bad == 6 and "rewritten" in report.problem


def test_an_entry_after_a_truncation_leaves_the_gap(logged):
    attack(logged, "DELETE FROM audit_log WHERE seq = 6")
    logged.record_audit("gate", {"gate": "admit", "state": "passed"}, actor="policy")
    report = logged.verify_audit()
    assert not report.ok and report.first_bad == 6 and "missing" in report.problem


def test_dgm_audit_verify_exits_1_naming_the_first_bad_entry(logged):
    ok = run_dgm("audit", "verify", archive=logged.root)
    assert ok.returncode == 0 and "6 entries" in ok.stdout
    attack(logged, "UPDATE audit_log SET actor = 'eve' WHERE seq = 4")
    bad = run_dgm("audit", "verify", archive=logged.root)
    assert bad.returncode == 1 and "entry 4" in bad.stdout
    listed = run_dgm("audit", "log", "--json", archive=logged.root)
    assert listed.returncode == 0 and '"kind": "decision"' in listed.stdout
