"""The `dgm` command as a user runs it: a real process, real git, real SQLite."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest

from archive import Archive, EvalStatus, EvaluationResult, FMCall, Origin
from archive.events import RunTasks
from archive.records import HELD_OUT_STAGE
from dgm.review.service import review_node
from dgm.review.static import StaticReviewer
from tests.conftest import run_dgm


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails_cleanly(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """A user error: exit code 2 and exactly one line on stderr."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def populated(tmp_path: Path, agent_dir: Path) -> tuple[Path, dict[str, str]]:
    """root -> a -> c, root -> b; evaluated, reviewed, with FM usage and a run."""
    path = tmp_path / "arc"
    with Archive.init(path) as arc:
        searched = {"searched": [f"t{i}" for i in range(4)], "held_out": ["h0", "h1"]}
        tasks = RunTasks(benchmark="swe", model="smol", **searched)
        run = arc.create_run("test", {"selector": {"name": "score_child_prop"}}, tasks)
        root = arc.add_node(agent_dir, origin=Origin.SEED, proposal="seed agent", run_id=run.id)
        (agent_dir / "agent.py").write_text("def run(task):\n    return 'retry'\n")
        a = arc.add_node(
            agent_dir,
            parent=root.id,
            origin=Origin.SELF_MODIFICATION,
            proposal="Retry failed edits",
            run_id=run.id,
        )
        (agent_dir / "notes.md").write_text("notes\n")
        c = arc.add_node(
            agent_dir,
            parent=a.id,
            origin=Origin.SELF_MODIFICATION,
            proposal="Keep notes",
            run_id=run.id,
        )
        b = arc.add_node(agent_dir, parent=root.id, proposal="A person's variant")
        for node, solved in ((root, 1), (a, 3), (c, 2), (b, 0)):
            arc.record_evaluations(
                node.id,
                [
                    EvaluationResult(
                        "swe",
                        f"t{i}",
                        EvalStatus.RESOLVED if i < solved else EvalStatus.UNRESOLVED,
                        stage="small",
                        model="smol",
                    )
                    for i in range(4)
                ],
                run_id=run.id,
            )
        arc.record_fm_call(FMCall("local", "smollm2", 100, 20, 0.0, 0.5, node_id=a.id))
        for node in (a, b, c):
            review_node(arc, node.id, [StaticReviewer()])
    return path, {"root": root.id, "a": a.id, "b": b.id, "c": c.id, "run": run.id}


def test_init_add_and_tree(tmp_path, agent_dir):
    arc = tmp_path / "arc"
    assert "Created" in ok(run_dgm("init", archive=arc))
    first = json.loads(
        ok(run_dgm("add-agent", str(agent_dir), "--origin", "seed", "--json", archive=arc))
    )
    (agent_dir / "agent.py").write_text("changed\n")
    out = ok(
        run_dgm("add-agent", str(agent_dir), "--parent", first["id"][:6], "-m", "mine", archive=arc)
    )
    assert out.startswith("Added node ")
    nodes = json.loads(ok(run_dgm("tree", "--json", archive=arc)))
    assert [n["origin"] for n in nodes] == ["seed", "human"]
    assert nodes[1]["parent"] == first["id"]
    for key in ("id", "parent", "commit", "tree", "origin", "status", "children", "score"):
        assert key in nodes[0]
    assert nodes[0]["children"] == 1 and nodes[0]["score"] is None
    text = ok(run_dgm("tree", archive=arc))
    assert first["id"][:8] in text and "children 1" in text


def test_archive_from_environment(tmp_path, agent_dir):
    env = {"DGM_ARCHIVE": str(tmp_path / "env-arc")}
    ok(run_dgm("init", env=env))
    ok(run_dgm("add-agent", str(agent_dir), env=env))
    assert len(json.loads(ok(run_dgm("tree", "--json", env=env)))) == 1
    ok(run_dgm("init", cwd=tmp_path))  # default ./dgm-archive
    assert (tmp_path / "dgm-archive" / "archive.json").exists()


def test_tree_scores_and_text(populated):
    arc, ids = populated
    nodes = {n["id"]: n for n in json.loads(ok(run_dgm("tree", "--json", archive=arc)))}
    assert nodes[ids["a"]]["score"] == 0.75 and nodes[ids["a"]]["attempted"] == 4
    assert nodes[ids["a"]]["interval"] == [0.3006, 0.9544]  # 3/4 is mostly noise
    assert nodes[ids["root"]]["children"] == 2 and nodes[ids["c"]]["depth"] == 2
    text = ok(run_dgm("tree", archive=arc))
    assert "0.750 (3/4; 95% 0.30-0.95)" in text
    assert text.splitlines()[1].startswith("└── " + ids["root"][:8])
    lines = ok(run_dgm("tree", ids["a"][:6], archive=arc)).splitlines()
    assert [line[:12] for line in lines[1:]] == ["└── " + ids["a"][:8], "    └── " + ids["c"][:4]]
    top = json.loads(ok(run_dgm("tree", "--depth", "1", "--json", archive=arc)))
    assert {n["id"] for n in top} == {ids["root"], ids["a"], ids["b"]}
    sub = json.loads(ok(run_dgm("tree", ids["a"][:6], "--depth", "0", "--json", archive=arc)))
    assert [n["id"] for n in sub] == [ids["a"]]


def test_show(populated):
    arc, ids = populated
    shown = json.loads(ok(run_dgm("show", ids["a"][:7], "--json", archive=arc)))
    assert shown["id"] == ids["a"] and shown["parent_id"] == ids["root"]
    assert shown["children"] == [ids["c"]] and shown["depth"] == 1
    assert shown["scores"]["overall"] == {
        "resolved": 3, "attempted": 4, "score": 0.75, "interval": [0.3006, 0.9544],
    }  # fmt: skip
    assert len(shown["evaluations"]) == 4
    assert (shown["reviews"][0]["kind"], shown["reviews"][0]["risk"]) == ("automated", "low")
    text = ok(run_dgm("show", ids["a"][:7], archive=arc))
    assert "Retry failed edits" in text and "0.750 (3/4; 95% 0.30-0.95)" in text


def test_diff(populated):
    arc, ids = populated
    out = ok(run_dgm("diff", ids["a"][:6], archive=arc))
    assert "+    return 'retry'" in out and "-    return 'patch'" in out
    against = ok(run_dgm("diff", ids["c"][:6], "--against", ids["root"][:6], archive=arc))
    assert "+notes" in against and "+    return 'retry'" in against
    stat = ok(run_dgm("diff", ids["c"][:6], "--stat", archive=arc))
    assert "notes.md | 1 +" in stat
    assert "+def run" in ok(run_dgm("diff", ids["root"][:6], archive=arc))


def test_cat_reads_a_file_without_checkout(populated):
    arc, ids = populated
    assert ok(run_dgm("cat", ids["a"][:6], "agent.py", archive=arc)).endswith("'retry'\n")
    assert "'patch'" in ok(run_dgm("cat", ids["root"][:6], "agent.py", archive=arc))
    fails_cleanly(run_dgm("cat", ids["a"][:6], "nope.py", archive=arc), "no file 'nope.py'")


def test_lineage(populated):
    arc, ids = populated
    rows = json.loads(ok(run_dgm("lineage", ids["c"][:6], "--json", archive=arc)))
    assert [r["id"] for r in rows] == [ids["root"], ids["a"], ids["c"]]
    assert [r["depth"] for r in rows] == [0, 1, 2]
    assert rows[1]["summary"] == "Retry failed edits"
    assert rows[2]["score"]["score"] == 0.5
    assert "Keep notes" in ok(run_dgm("lineage", ids["c"][:6], archive=arc))


def test_export_bundle_and_provenance(populated, tmp_path):
    arc, ids = populated
    out = tmp_path / "export"
    ok(run_dgm("export", ids["c"][:6], "--out", str(out), archive=arc))
    assert sorted(p.name for p in out.iterdir()) == ["agent", "agent.bundle", "provenance.json"]
    assert (out / "agent" / "notes.md").read_text() == "notes\n"
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(out / "agent.bundle"), str(clone)], check=True)
    assert (clone / "notes.md").read_text() == "notes\n"
    log = subprocess.run(
        ["git", "log", "--format=%s"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout.split()
    assert (
        log[:2] == ["Keep", "notes"]
        and len(
            subprocess.run(
                ["git", "rev-list", "HEAD"], cwd=clone, capture_output=True, text=True, check=True
            ).stdout.split()
        )
        == 3
    )  # one commit per ancestor
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["node"]["id"] == ids["c"]
    assert [a["id"] for a in prov["lineage"]] == [ids["root"], ids["a"], ids["c"]]
    assert prov["lineage"][1]["models"] == ["smol", "smollm2"]
    assert prov["models"] == ["smol"]
    assert prov["scores"]["overall"]["score"] == 0.5
    assert {r["task"] for r in prov["results"]} == {"t0", "t1", "t2", "t3"}
    assert prov["run"]["id"] == ids["run"] and len(prov["config_hash"]) == 64
    [review] = prov["reviews"]
    assert (review["kind"], review["risk"], review["tree"]) == (
        "automated",
        "low",
        prov["node"]["tree"],
    )
    assert prov["gates"]["export"] == {
        "state": "passed",
        "reason": "risk low passes export on its own",
    }


def test_export_best(populated, tmp_path):
    arc, ids = populated
    out = json.loads(
        ok(run_dgm("export", "best", "--out", str(tmp_path / "b"), "--json", archive=arc))
    )
    assert out["node"] == ids["a"]
    rule = "the admitted node with the best score on the searched tasks"
    assert out["chosen"] == {
        "run": "test", "run_id": ids["run"], "rule": rule, "resolved": 3, "attempted": 4
    }  # fmt: skip
    prov = json.loads((tmp_path / "b" / "provenance.json").read_text())
    assert prov["reviews"][0]["reason"] == "risk low: nothing found"
    assert prov["chosen"]["rule"] == rule
    text = ok(run_dgm("export", "best", "--out", str(tmp_path / "t"), archive=arc))
    said = " ".join(text.split())  # as wrapped to the terminal
    assert f"It is run test's answer, 3/4 on its searched tasks; chosen as {rule}." in said


def test_export_best_is_never_chosen_by_held_out_results(populated, tmp_path):
    """c: 2/4 on the searched tasks, 6/6 held out (8/10 in all, over a's 3/4): a run's answer
    rests on the searched tasks, and nodes of other runs or none are not its answer."""
    arc, ids = populated
    with Archive.open(arc) as archive:
        held = [
            EvaluationResult(
                "swe", f"h{i}", EvalStatus.RESOLVED, stage=HELD_OUT_STAGE, model="smol"
            )
            for i in range(6)
        ]
        archive.record_evaluations(ids["c"], held)
        solved = [
            EvaluationResult("swe", f"t{i}", EvalStatus.RESOLVED, model="smol") for i in range(4)
        ]
        archive.record_evaluations(ids["b"], solved)  # 4/4, but in no run
    out = json.loads(ok(run_dgm("export", "best", "--out", str(tmp_path / "b"), "--json",
                                archive=arc)))  # fmt: skip
    assert out["node"] == ids["a"]
    # searched and held-out results are shown apart
    tree = {n["id"]: n for n in json.loads(ok(run_dgm("tree", "--json", archive=arc)))}
    c = tree[ids["c"]]
    assert (c["resolved"], c["attempted"], c["interval"]) == (2, 4, [0.15, 0.85])
    assert c["held_out"] == {"resolved": 6, "attempted": 6, "score": 1.0, "interval": [0.6097, 1.0]}
    tree_text = ok(run_dgm("tree", archive=arc))
    assert "score 0.500 (2/4; 95% 0.15-0.85)  held-out 1.000 (6/6; 95% 0.61-1.00)" in tree_text
    shown = ok(run_dgm("show", ids["c"][:8], archive=arc))
    assert "0.500 (2/4; 95% 0.15-0.85)" in shown and "1.000 (6/6; 95% 0.61-1.00)" in shown
    rows = json.loads(ok(run_dgm("lineage", ids["c"][:8], "--json", archive=arc)))
    assert (rows[-1]["score"]["attempted"], rows[-1]["held_out"]["attempted"]) == (4, 6)
    missing = run_dgm("export", "best", "--run", "nope", "--out", str(tmp_path / "n"), archive=arc)
    fails_cleanly(missing, "no run named 'nope'")


def test_fsck(populated):
    arc, _ids = populated
    assert "ok: 4 nodes" in ok(run_dgm("fsck", archive=arc))
    report = json.loads(ok(run_dgm("fsck", "--json", archive=arc)))
    assert report["ok"] and report["nodes"] == 4


# -- bad input: one line, exit code 2, nothing half-written -------------------------------------


def test_unknown_and_ambiguous_ids(tmp_path, agent_dir, monkeypatch):
    ids = iter(["beef0001" + "0" * 24, "beef0002" + "0" * 24])
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(next(ids)))
    arc = tmp_path / "arc"
    with Archive.init(arc) as a:
        a.add_node(agent_dir)
        a.add_node(agent_dir)
    fails_cleanly(run_dgm("show", "beef", archive=arc), "ambiguous", "more characters")
    fails_cleanly(run_dgm("show", "cafe", archive=arc), "no node 'cafe'")
    fails_cleanly(run_dgm("diff", "xyz", archive=arc), "not a node id")
    fails_cleanly(run_dgm("add-agent", str(agent_dir), "--parent", "dead", archive=arc), "no node")
    assert len(json.loads(ok(run_dgm("tree", "--json", archive=arc)))) == 2


def test_missing_archive(tmp_path):
    for args in (["tree"], ["show", "abcd"], ["export", "best", "--out", str(tmp_path / "x")]):
        fails_cleanly(run_dgm(*args, archive=tmp_path / "none"), "no archive at", "dgm init")
    assert not (tmp_path / "none").exists() and not (tmp_path / "x").exists()


def test_init_twice(tmp_path):
    ok(run_dgm("init", archive=tmp_path / "arc"))
    fails_cleanly(run_dgm("init", archive=tmp_path / "arc"), "already holds an archive")


def test_newer_schema(populated):
    arc, _ = populated
    with sqlite3.connect(arc / "archive.db") as db:
        db.execute("UPDATE alembic_version SET version_num = 'ffff'")
    fails_cleanly(run_dgm("tree", archive=arc), "newer than this dgm", "upgrade dgm")
    marker = json.loads((arc / "archive.json").read_text())
    (arc / "archive.json").write_text(json.dumps({**marker, "format": 99}))
    fails_cleanly(run_dgm("tree", archive=arc), "newer dgm")


def test_database_locked(populated, agent_dir):
    arc, _ids = populated
    holder = sqlite3.connect(arc / "archive.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = run_dgm("add-agent", str(agent_dir), archive=arc, env={"DGM_BUSY_TIMEOUT": "0.2"})
        fails_cleanly(result, "locked by another process", "try again")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # the failed add left no row; its git objects are unreferenced, which is allowed
    assert len(json.loads(ok(run_dgm("tree", "--json", archive=arc)))) == 4
    assert json.loads(ok(run_dgm("fsck", "--json", archive=arc)))["ok"]


def test_git_objects_missing(populated, tmp_path):
    arc, ids = populated
    commit = json.loads(ok(run_dgm("show", ids["c"][:6], "--json", archive=arc)))["commit"]
    obj = arc / "agents.git" / "objects" / commit[:2] / commit[2:]
    obj.chmod(0o644)
    obj.unlink()
    fails_cleanly(run_dgm("diff", ids["c"][:6], archive=arc), "missing", "git store")
    out = tmp_path / "export"
    fails_cleanly(run_dgm("export", ids["c"][:6], "--out", str(out), archive=arc), "missing")
    assert not out.exists() and not list(tmp_path.glob(".export*"))
    result = run_dgm("fsck", archive=arc)
    assert result.returncode == 1 and "damaged" in result.stdout


def test_export_target_not_empty(populated, tmp_path):
    arc, ids = populated
    target = tmp_path / "full"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    fails_cleanly(run_dgm("export", ids["a"][:6], "--out", str(target), archive=arc), "not empty")
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    ok(run_dgm("export", ids["a"][:6], "--out", str(empty), archive=arc))
    assert (empty / "provenance.json").exists()


@pytest.mark.parametrize("points_to", ["an empty folder", "nothing"])
def test_export_onto_a_symlink_fails_cleanly(populated, tmp_path, points_to):
    arc, ids = populated
    elsewhere = tmp_path / "elsewhere"
    if points_to == "an empty folder":
        elsewhere.mkdir()
    link = tmp_path / "link"
    link.symlink_to(elsewhere)
    result = run_dgm("export", ids["a"][:6], "--out", str(link), archive=arc)
    fails_cleanly(result, "is a symbolic link; export into a new or empty folder")
    assert link.is_symlink() and not list(tmp_path.glob(".link.export*"))
    assert not elsewhere.exists() or not any(elsewhere.iterdir())


def test_bad_agent_folder(tmp_path):
    arc = tmp_path / "arc"
    ok(run_dgm("init", archive=arc))
    fails_cleanly(run_dgm("add-agent", str(tmp_path / "nope"), archive=arc), "not a directory")
    (tmp_path / "empty").mkdir()
    fails_cleanly(run_dgm("add-agent", str(tmp_path / "empty"), archive=arc), "no files")


def test_best_needs_a_run_with_a_scored_node(tmp_path, agent_dir):
    arc = tmp_path / "arc"
    ok(run_dgm("init", archive=arc))
    ok(run_dgm("add-agent", str(agent_dir), archive=arc))
    fails_cleanly(run_dgm("export", "best", "--out", str(tmp_path / "o"), archive=arc), "no run")
    with Archive.open(arc) as archive:
        run = archive.create_run("fresh", {"selector": {"name": "cmp"}})
        archive.add_node(agent_dir, origin=Origin.SEED, run_id=run.id)
    unscored = run_dgm("export", "best", "--out", str(tmp_path / "o"), archive=arc)
    fails_cleanly(unscored, "run 'fresh' has no scored node yet")


def test_postgres_archive_through_the_cli(tmp_path, agent_dir, postgres):
    url = postgres.create_database()
    arc = tmp_path / "pg-arc"
    ok(run_dgm("init", "--database", url, archive=arc))
    assert not (arc / "archive.db").exists()
    node = json.loads(ok(run_dgm("add-agent", str(agent_dir), "--json", archive=arc)))
    assert json.loads(ok(run_dgm("tree", "--json", archive=arc)))[0]["id"] == node["id"]
    bad = tmp_path / "bad"
    fails_cleanly(
        run_dgm(
            "init",
            "--database",
            f"postgresql://postgres@127.0.0.1:{postgres.port}/no_such_db",
            archive=bad,
        ),
        "cannot use database",
        "no_such_db",
    )
    assert not bad.exists()
