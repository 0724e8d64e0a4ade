"""The git store against the real git binary: identical hashes, readable history."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archive.errors import InvalidAgent, MissingObject
from archive.gitstore import GitStore
from tests.conftest import write_files

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def git_write_tree(directory: Path) -> str:
    """What `git add -A && git write-tree` makes of a folder."""
    git("init", "-q", str(directory))
    git("add", "-A", cwd=directory)
    return git("write-tree", cwd=directory)


@pytest.fixture
def store(tmp_path: Path) -> GitStore:
    return GitStore.init(tmp_path / "agents.git")


@pytest.fixture
def rich_agent(tmp_path: Path) -> Path:
    root = write_files(
        tmp_path / "rich",
        {
            "a.py": "print('a')\n",
            "b-c.txt": "sorts before b/ in git's order\n",
            "b/inner.py": "x = 1\n",
            "b.py": "y = 2\n",
            "deep/er/est/file.md": "# deep\n",
            "run.sh": "#!/bin/sh\necho hi\n",
            "data.bin": bytes(range(256)) * 10,
            "empty.txt": "",
        },
    )
    (root / "run.sh").chmod(0o755)
    os.symlink("a.py", root / "link.py")
    (root / "empty-dir").mkdir()
    return root


def test_tree_hash_is_gits_own(store, rich_agent, tmp_path):
    tree = store.write_directory(rich_agent)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(rich_agent), str(copy)], check=True)
    assert tree == git_write_tree(copy)


def test_ignore_rules(store, tmp_path):
    root = write_files(
        tmp_path / "ig",
        {
            "keep.py": "1",
            ".gitignore": "*.log\nbuild/\n",
            "run.log": "noise",
            "build/out.o": "obj",
            "pkg/__pycache__/m.cpython-311.pyc": "bytecode",
            "pkg/m.py": "2",
            "pkg/.gitignore": "secret.txt\n",
            "pkg/secret.txt": "s",
            "secret.txt": "not ignored at the top",
            ".git/config": "a nested repository's metadata",
        },
    )
    commit = store.write_commit(store.write_directory(root), None, "m", WHEN, "dgm")
    assert store.list_files(commit) == [
        ".gitignore",
        "keep.py",
        "pkg/.gitignore",
        "pkg/m.py",
        "secret.txt",
    ]


def test_checkout_round_trip_keeps_modes_and_links(store, rich_agent, tmp_path):
    tree = store.write_directory(rich_agent)
    commit = store.write_commit(tree, None, "seed", WHEN, "dgm")
    out = tmp_path / "out"
    store.checkout(commit, out)
    assert store.write_directory(out) == tree
    assert os.readlink(out / "link.py") == "a.py"
    assert (out / "run.sh").stat().st_mode & 0o111
    assert not (out / "a.py").stat().st_mode & 0o111
    assert (out / "data.bin").read_bytes() == bytes(range(256)) * 10


def test_commits_chain_and_git_reads_them(store, agent_dir):
    t1 = store.write_directory(agent_dir)
    c1 = store.write_commit(t1, None, "seed agent\n\nDgm-Node: a", WHEN, "dgm")
    (agent_dir / "agent.py").write_text("def run(task):\n    return 'better'\n")
    t2 = store.write_directory(agent_dir)
    c2 = store.write_commit(t2, c1, "return a better patch", WHEN, "dgm")
    store.set_node_ref("n2", c2)
    assert git("--git-dir", str(store.path), "rev-parse", "refs/dgm/nodes/n2") == c2
    log = git("--git-dir", str(store.path), "log", "--format=%H %P|%T|%s", c2).splitlines()
    assert log == [f"{c2} {c1}|{t2}|return a better patch", f"{c1} |{t1}|seed agent"]
    subprocess.run(
        ["git", "--git-dir", str(store.path), "fsck", "--strict"], check=True, capture_output=True
    )
    assert store.read_file(c2, "agent.py") == b"def run(task):\n    return 'better'\n"
    assert store.read_file(c1, "/agent.py").endswith(b"'patch'\n")
    diff = store.diff(c1, c2)
    assert "-    return 'patch'" in diff and "+    return 'better'" in diff
    assert "agent.py | 2 +-" in store.diff(c1, c2, stat_only=True)
    assert "+def edit" in store.diff(None, c1)  # a root diffs against the empty tree
    assert store.node_refs() == {"n2": c2}
    infos = store.commit_infos([c2, c1, "0" * 40])
    assert infos[c2].parents == (c1,) and infos[c2].tree == t2
    assert infos[c1].parents == ()
    assert infos["0" * 40] is None


def test_read_file_errors(store, agent_dir):
    commit = store.write_commit(store.write_directory(agent_dir), None, "m", WHEN, "dgm")
    with pytest.raises(InvalidAgent, match="no file"):
        store.read_file(commit, "nope.py")
    with pytest.raises(InvalidAgent, match="directory"):
        store.read_file(commit, "tools")
    with pytest.raises(MissingObject, match="missing"):
        store.read_file("1" * 40, "agent.py")


def test_bad_directories(store, tmp_path):
    with pytest.raises(InvalidAgent, match="not a directory"):
        store.write_directory(tmp_path / "absent")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(InvalidAgent, match="no files"):
        store.write_directory(tmp_path / "empty")


def test_packed_objects_are_not_written_again(store, agent_dir):
    commit = store.write_commit(store.write_directory(agent_dir), None, "m", WHEN, "dgm")
    store.set_node_ref("n1", commit)
    store.gc()
    loose = [p for p in (store.path / "objects").glob("[0-9a-f][0-9a-f]/*")]
    assert loose == []
    store.write_directory(agent_dir)  # every object is already in the pack
    assert [p for p in (store.path / "objects").glob("[0-9a-f][0-9a-f]/*")] == []
    assert store.read_file(commit, "agent.py").startswith(b"def run")


def test_bundle_clones_with_lineage_as_history(store, agent_dir, tmp_path):
    c1 = store.write_commit(store.write_directory(agent_dir), None, "seed", WHEN, "dgm")
    (agent_dir / "new.py").write_text("n = 1\n")
    c2 = store.write_commit(store.write_directory(agent_dir), c1, "add new", WHEN, "dgm")
    store.bundle(c2, tmp_path / "agent.bundle")
    git("clone", "-q", str(tmp_path / "agent.bundle"), str(tmp_path / "clone"))
    assert (tmp_path / "clone" / "new.py").read_text() == "n = 1\n"
    assert git("log", "--format=%H", cwd=tmp_path / "clone").splitlines() == [c2, c1]
    # the store itself gained no branch
    assert git("--git-dir", str(store.path), "for-each-ref", "refs/heads") == ""
