"""benchmarks.patches against real git: each reading is checked against what `git apply` does
with the patch in a fresh checkout of the repository it was made in. Hostile patches (as an
agent rewarded for its score might write them) sit beside honest ones."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from benchmarks.patches import FilePatch, PatchError, join, make, parse
from tests.conftest import write_files

ENV = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")} | {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "LC_ALL": "C",
}
LINES = "".join(f"line {n}\n" for n in range(1, 21))


def git(cwd: Path, *args: str, data: str | None = None) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=ENV,
        input=None if data is None else data.encode("utf-8", "surrogateescape"),
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode("utf-8", "surrogateescape")


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file under `root` but .git: symlink target, or executable bit and content."""
    found: dict[str, tuple] = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0] == ".git":
            continue
        if path.is_symlink():
            found[rel] = ("link", os.readlink(path))
        elif path.is_file():
            found[rel] = ("file", bool(path.stat().st_mode & 0o100), path.read_bytes())
    return found


class Repo:
    """A repository with `files` committed; changes are staged and diffed as an agent's are."""

    def __init__(self, root: Path, files: dict[str, str | bytes]) -> None:
        self.root = root
        root.mkdir()
        git(root, "init", "-q")
        git(root, "config", "core.quotePath", "true")
        write_files(root, files)
        git(root, "add", "-A")
        git(root, "commit", "-q", "--allow-empty", "-m", "start")

    def write(self, files: dict[str, str | bytes]) -> None:
        write_files(self.root, files)

    def remove(self, path: str) -> None:
        (self.root / path).unlink()

    def patch(self, *flags: str) -> str:
        git(self.root, "add", "-A")
        return git(self.root, "diff", "--cached", "--binary", *flags)

    def applied(self, patch: str, *flags: str) -> dict[str, str]:
        """What `git apply` of `patch` does to a fresh checkout of the committed files."""
        copy = Path(tempfile.mkdtemp(dir=self.root.parent)) / "copy"
        git(self.root.parent, "clone", "-q", str(self.root), str(copy))
        before = snapshot(copy)
        git(copy, "apply", *flags, data=patch)
        after = snapshot(copy)
        changes = {}
        for path in before.keys() | after.keys():
            if path not in after:
                changes[path] = "deleted"
            elif path not in before:
                changes[path] = "created"
            elif before[path] != after[path]:
                changes[path] = "changed"
        return changes


def effects(files: list[FilePatch]) -> dict[str, str]:
    """What applying `files` should do to a tree, by parse's reading."""
    found = {}
    for f in files:
        if f.kind in ("delete", "rename"):
            found[f.old_path] = "deleted"
        if f.kind in ("create", "rename", "copy"):
            found[f.new_path] = "created"
        if f.kind == "modify":
            found[f.new_path] = "changed"
    return found


def agreeing(repo: Repo, patch: str, *apply_flags: str) -> list[FilePatch]:
    """parse's reading of `patch`, checked against what git apply does with it."""
    files = parse(patch)
    assert effects(files) == repo.applied(patch, *apply_flags)
    return files


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo", {"src.py": "a\nb\nc\n", "x_test.py": "old\n"})


# --- honest patches, as git writes them ------------------------------------------------------


def test_modification(repo: Repo) -> None:
    repo.write({"src.py": "a\nB\nc\n"})
    patch = repo.patch()
    [f] = agreeing(repo, patch)
    assert (f.old_path, f.new_path, f.kind, f.paths) == ("src.py", "src.py", "modify", ["src.py"])
    assert (f.old_mode, f.new_mode, f.binary) == (0o100644, 0o100644, False)
    assert (f.added, f.removed) == ([(2, "B")], [(2, "b")])
    assert f.text == patch


def test_new_and_deleted_files(repo: Repo) -> None:
    repo.remove("src.py")
    repo.write({"pkg/new.py": "x = 1\ny = 2\n"})
    [created, deleted] = sorted(agreeing(repo, repo.patch()), key=lambda f: f.kind)
    assert (created.old_path, created.new_path, created.kind) == (None, "pkg/new.py", "create")
    assert (created.old_mode, created.new_mode) == (None, 0o100644)
    assert created.added == [(1, "x = 1"), (2, "y = 2")]
    assert (deleted.old_path, deleted.new_path, deleted.kind) == ("src.py", None, "delete")
    assert (deleted.old_mode, deleted.new_mode) == (0o100644, None)
    assert deleted.removed == [(1, "a"), (2, "b"), (3, "c")]


def test_renames_with_and_without_edits(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo", {"a.py": LINES, "b.py": LINES.upper()})
    repo.remove("a.py")
    repo.remove("b.py")
    repo.write({"moved/a.py": LINES, "b2.py": LINES.upper().replace("LINE 7", "line seven")})
    files = agreeing(repo, repo.patch("-M"))
    assert {(f.old_path, f.new_path, f.kind) for f in files} == {
        ("a.py", "moved/a.py", "rename"),
        ("b.py", "b2.py", "rename"),
    }
    edited = next(f for f in files if f.new_path == "b2.py")
    assert (edited.added, edited.removed) == ([(7, "line seven")], [(7, "LINE 7")])
    assert edited.paths == ["b.py", "b2.py"]


def test_copy(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo", {"lib.py": LINES})
    repo.write({"lib_copy.py": LINES + "more\n"})
    [f] = agreeing(repo, repo.patch("-C", "--find-copies-harder"))
    assert (f.old_path, f.new_path, f.kind, f.added) == (
        "lib.py",
        "lib_copy.py",
        "copy",
        [(21, "more")],
    )


def test_mode_change_only(repo: Repo) -> None:
    (repo.root / "src.py").chmod(0o755)
    [f] = agreeing(repo, repo.patch())
    assert (f.kind, f.old_mode, f.new_mode, f.added, f.removed) == (
        "modify",
        0o100644,
        0o100755,
        [],
        [],
    )


def test_symlink_created(repo: Repo) -> None:
    (repo.root / "link").symlink_to("src.py")
    [f] = agreeing(repo, repo.patch())
    assert (f.new_path, f.kind, f.new_mode, f.added) == (
        "link",
        "create",
        0o120000,
        [(1, "src.py")],
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [("a\nb", "a\nc\n"), ("a\nb\n", "a\nc"), ("a\nb", "a\nc"), ("a\nb", "a\nb\nc")],
    ids=["old-side", "new-side", "both-sides", "both-sides-appended"],
)
def test_no_newline_at_end_of_file(tmp_path: Path, old: str, new: str) -> None:
    repo = Repo(tmp_path / "repo", {"f.txt": old})
    repo.write({"f.txt": new})
    patch = repo.patch()
    assert "\\ No newline at end of file" in patch
    [f] = agreeing(repo, patch)
    assert f.text == patch  # the last "\ No newline" line belongs to the hunk
    assert (f.added[-1][1], f.removed[-1][1]) == (new.splitlines()[-1], old.splitlines()[-1])


def test_hunk_lines_that_look_like_headers(tmp_path: Path) -> None:
    lines = LINES.replace("line 5\n", "-- five\n")
    repo = Repo(tmp_path / "repo", {"f.txt": lines})
    repo.write({"f.txt": lines.replace("-- five\n", "++ five\n").replace("line 15", "fifteen")})
    patch = repo.patch("-U0")
    # without context the first hunk ends in lines that look like a traditional header
    assert "--- five\n+++ five\n@@ -15 +15 @@" in patch
    [f] = agreeing(repo, patch, "--unidiff-zero")
    assert f.removed == [(5, "-- five"), (15, "line 15")]
    assert f.added == [(5, "++ five"), (15, "fifteen")]


def test_quoted_names(tmp_path: Path) -> None:
    names = ["with space.py", "tab\there.py", 'quo"te.py', "back\\slash.py", "ünï/cödé.py"]
    repo = Repo(tmp_path / "repo", dict.fromkeys(names, "old\n"))
    repo.write(dict.fromkeys(names, "new\n"))
    patch = repo.patch()
    assert '"a/\\303\\274n\\303\\257/c\\303\\266d\\303\\251.py"' in patch
    assert '"a/tab\\there.py"' in patch
    files = agreeing(repo, patch)
    assert sorted(f.new_path for f in files) == sorted(names)


def test_crlf_content(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo", {"win.txt": b"one\r\ntwo\r\nthree\r\n"})
    repo.write({"win.txt": b"one\r\nTWO\r\nthree\r\n"})
    patch = repo.patch()
    assert "-two\r\n+TWO\r\n" in patch
    [f] = agreeing(repo, patch)
    assert (f.removed, f.added) == ([(2, "two\r")], [(2, "TWO\r")])


def test_binary_literal_and_delta(tmp_path: Path) -> None:
    blob = bytes(range(256)) * 64
    repo = Repo(tmp_path / "repo", {"data.bin": blob})
    repo.write({"data.bin": blob[:1000] + b"changed" + blob[1007:], "new.bin": b"\0\1\2new"})
    patch = repo.patch()
    assert "GIT binary patch\ndelta " in patch
    assert "GIT binary patch\nliteral " in patch
    files = agreeing(repo, patch)
    assert {(f.new_path, f.kind, f.binary, len(f.added)) for f in files} == {
        ("data.bin", "modify", True, 0),
        ("new.bin", "create", True, 0),
    }
    assert "".join(f.text for f in files) == patch


def test_binary_without_data(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo", {"data.bin": b"\0one"})
    repo.write({"data.bin": b"\0two"})
    git(repo.root, "add", "-A")
    patch = git(repo.root, "diff", "--cached")  # no --binary: "Binary files ... differ"
    [f] = parse(patch)
    assert (f.new_path, f.binary) == ("data.bin", True)


def test_empty_patch_is_no_files() -> None:
    assert parse("") == []
    assert parse(" \n\t\n") == []


# --- hostile patches, each beside its honest control ---------------------------------------


def test_octal_escaped_letter_in_a_name(repo: Repo) -> None:
    repo.write({"x_test.py": "new\n"})
    honest = repo.patch()
    assert [f.paths for f in agreeing(repo, honest)] == [["x_test.py"]]
    hidden = honest.replace("a/x_test.py", '"a/x\\137test.py"').replace(
        "b/x_test.py", '"b/x\\137test.py"'
    )
    assert hidden.startswith('diff --git "a/x\\137test.py" "b/x\\137test.py"\n')
    assert [f.paths for f in agreeing(repo, hidden)] == [["x_test.py"]]


def test_traditional_section_after_a_git_hunk(repo: Repo) -> None:
    repo.write({"src.py": "a\nB\nc\n"})
    honest = repo.patch()
    assert [f.paths for f in agreeing(repo, honest)] == [["src.py"]]
    smuggled = "--- a/x_test.py\n+++ b/x_test.py\n@@ -1 +1 @@\n-old\n+new\n"
    [kept, extra] = agreeing(repo, honest + smuggled)
    assert kept.text == honest
    assert (extra.old_path, extra.new_path, extra.kind) == ("x_test.py", "x_test.py", "modify")
    assert (extra.text, extra.added) == (smuggled, [(1, "new")])


def test_garbage_between_sections(repo: Repo) -> None:
    repo.write({"src.py": "a\nB\nc\n", "x_test.py": "new\n"})
    honest = repo.patch()
    first, second = honest.split("diff --git a/x_test.py")
    second = "diff --git a/x_test.py" + second
    noisy = "From: someone\nSubject: a fix\n\n" + first + "-- \nsome text\n\n" + second + "bye\n"
    files = agreeing(repo, noisy)
    assert [f.text for f in files] == [first, second]
    assert [f.text for f in agreeing(repo, honest)] == [first, second]


def test_hunk_counts_must_match_its_lines(repo: Repo) -> None:
    repo.write({"src.py": "a\nB\nc\n"})
    honest = repo.patch()
    assert "@@ -1,3 +1,3 @@" in honest
    with pytest.raises(PatchError, match="corrupt patch at line"):
        parse(honest.replace("@@ -1,3 +1,3 @@", "@@ -1,4 +1,3 @@"))
    with pytest.raises(PatchError, match="corrupt patch at line"):
        parse(honest.replace("@@ -1,3 +1,3 @@", "@@ -1,3 +1,4 @@"))
    # counts short of the lines end the hunk early: the rest is garbage, to git too
    short = honest.replace("@@ -1,3 +1,3 @@", "@@ -1,2 +1,2 @@")
    [f] = parse(short)
    assert f.text == short.removesuffix(" c\n")


def test_hunk_without_a_file_header() -> None:
    with pytest.raises(PatchError, match="patch fragment without header at line 1"):
        parse("@@ -1 +1 @@\n-old\n+new\n")
    # a `diff --git` line with no header lines after it does not head the hunk either
    with pytest.raises(PatchError, match="patch fragment without header"):
        parse("diff --git a/x_test.py b/x_test.py\n@@ -1 +1 @@\n-old\n+new\n")


def test_diff_git_names_that_disagree(repo: Repo) -> None:
    repo.write({"x_test.py": "new\n"})
    honest = repo.patch()
    # git takes the file from the ---/+++ lines, whatever the diff --git line says
    disguised = honest.replace("diff --git a/x_test.py b/x_test.py", "diff --git a/src.py b/x.py")
    assert [f.paths for f in agreeing(repo, disguised)] == [["x_test.py"]]
    (repo.root / "src.py").chmod(0o755)
    git(repo.root, "add", "-A")
    mode_only = git(repo.root, "diff", "--cached", "--", "src.py")
    assert [f.paths for f in agreeing(repo, mode_only)] == [["src.py"]]
    unnamed = mode_only.replace("diff --git a/src.py b/src.py", "diff --git a/src.py b/x.py")
    with pytest.raises(PatchError, match="lacks filename information"):
        parse(unnamed)


def test_names_after_a_header_without_hunks(repo: Repo) -> None:
    (repo.root / "src.py").chmod(0o755)
    honest = repo.patch()
    assert [(f.paths, f.new_mode) for f in agreeing(repo, honest)] == [(["src.py"], 0o100755)]
    # the mode change header reads on into another file's ---/+++ lines
    hijacked = honest + "--- a/x_test.py\n+++ b/x_test.py\n@@ -1 +1 @@\n-old\n+new\n"
    [f] = agreeing(repo, hijacked)
    assert (f.paths, f.old_mode, f.new_mode, f.added) == (
        ["x_test.py"],
        0o100644,
        0o100755,
        [(1, "new")],
    )


def test_names_left_by_a_skipped_diff_git_line(repo: Repo) -> None:
    (repo.root / "src.py").chmod(0o755)
    honest = repo.patch()
    assert [f.paths for f in agreeing(repo, honest)] == [["src.py"]]
    # git skips a `diff --git` line with no header lines, but keeps the names it gave for a
    # later header that names no file of its own
    lead = "diff --git a/x_test.py b/x_test.py\nnot a header line\n"
    [f] = agreeing(repo, lead + honest)
    assert (f.paths, f.new_mode, f.text) == (["x_test.py"], 0o100755, lead + honest)


def test_names_without_folders_make_git_guess_p0(repo: Repo) -> None:
    repo.write({"src.py": "a\nB\nc\n"})
    honest = repo.patch()
    traditional = "--- x_test.py\n+++ x_test.py\n@@ -1 +1 @@\n-old\n+new\n"
    files = parse(traditional + honest)
    assert [(f.old_path, f.new_path) for f in files] == [
        ("x_test.py", "x_test.py"),
        ("a/src.py", "b/src.py"),
    ]


def test_traditional_patch_that_leaves_creation_to_the_tree(repo: Repo) -> None:
    decided = "--- a/x_test.py\n+++ b/x_test.py\n@@ -1 +1,2 @@\n old\n+new\n"
    assert [f.kind for f in agreeing(repo, decided)] == ["modify"]
    # one hunk that only adds: git makes it a creation if the file is missing
    with pytest.raises(PatchError, match="whether it creates or deletes"):
        parse("--- a/x_test.py\n+++ b/x_test.py\n@@ -1,0 +2 @@\n+new\n")


def test_header_with_nothing_to_apply() -> None:
    with pytest.raises(PatchError, match="patch with only garbage"):
        parse("diff --git a/src.py b/src.py\nindex 1234567..89abcde 100644\n")


def test_nul_byte(repo: Repo) -> None:
    repo.write({"src.py": "a\nB\nc\n"})
    with pytest.raises(PatchError, match="NUL"):
        parse(repo.patch().replace("+B", "+B\0"))


def test_git_refusals_come_with_gits_message() -> None:
    with pytest.raises(PatchError, match=r"^git apply: No valid patches in input"):
        parse("just some text\n")


# --- joining kept sections --------------------------------------------------------------------


def test_join_of_a_subset(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo", {"a.py": "a\n", "a_test.py": "t\n", "b.py": LINES})
    repo.remove("b.py")
    repo.write({"a.py": "A\n", "a_test.py": "T\n", "c.py": "c\n", "d.bin": b"\0d"})
    files = agreeing(repo, repo.patch())
    assert len(files) == 5
    kept = [f for f in files if not any(p.endswith("_test.py") for p in f.paths)]
    patch = join(kept)
    assert patch == "".join(f.text for f in kept)
    assert agreeing(repo, patch) == kept


def test_join_refuses_sections_that_read_as_one(repo: Repo) -> None:
    (repo.root / "src.py").chmod(0o755)
    repo.write({"other.py": "o\n"})
    [mode_only] = [f for f in parse(repo.patch()) if f.new_path == "src.py"]
    assert mode_only.text.endswith("new mode 100755\n")
    [traditional] = parse("--- a/x_test.py\n+++ b/x_test.py\n@@ -1 +1 @@\n-old\n+new\n")
    with pytest.raises(PatchError, match="read differently once joined"):
        join([mode_only, traditional])


# --- writing patches ------------------------------------------------------------------------

BLOB = bytes(range(256)) * 32
MAKE_CASES = {
    "new": ("pkg/new.py", None, "x = 1\n"),
    "new-empty": ("empty.txt", None, ""),
    "deleted": ("old.py", "a\nb\n", None),
    "modified": ("src/mod.py", "a\nb\nc\n", "a\nB\nc\n"),
    "no-newline-old": ("f.txt", "a\nb", "a\nb\n"),
    "no-newline-new": ("f.txt", "a\nb\n", "a\nc"),
    "no-newline-both": ("f.txt", "a\nb", "a\nc"),
    "quoted-name": ("dir with space/ünï.txt", "a\n", "b\n"),
    "binary-new": ("img.bin", None, b"\0\1\2\3"),
    "binary-modified": ("img.bin", BLOB, BLOB[:100] + b"patched" + BLOB[107:]),
    "binary-deleted": ("img.bin", BLOB, None),
}


def repository_diff(root: Path, path: str, old: str | bytes | None, new: str | bytes | None) -> str:
    """What `git diff` shows for the change in a repository (`--binary` for binary files)."""
    repo = Repo(root, {} if old is None else {path: old})
    if new is None:
        repo.remove(path)
    else:
        repo.write({path: new})
    git(repo.root, "add", "-A")
    binary = any(isinstance(side, bytes) and b"\0" in side for side in (old, new))
    return git(repo.root, "diff", "--cached", *(["--binary"] if binary else []))


@pytest.mark.parametrize(("path", "old", "new"), MAKE_CASES.values(), ids=MAKE_CASES.keys())
def test_make_is_what_a_repository_shows(
    tmp_path: Path, path: str, old: str | bytes | None, new: str | bytes | None
) -> None:
    patch = make(path, old, new)
    assert patch == repository_diff(tmp_path / "repo", path, old, new)
    [f] = parse(patch)
    assert f.paths == [path]


@pytest.mark.parametrize(("path", "old", "new"), MAKE_CASES.values(), ids=MAKE_CASES.keys())
def test_make_applies_to_the_old_content(
    tmp_path: Path, path: str, old: str | bytes | None, new: str | bytes | None
) -> None:
    git(tmp_path, "init", "-q")
    if old is not None:
        write_files(tmp_path, {path: old})
    patch = make(path, old, new)
    git(tmp_path, "apply", "--check", data=patch)
    git(tmp_path, "apply", data=patch)
    target = tmp_path / path
    if new is None:
        assert not target.exists()
    else:
        assert target.read_bytes() == (new.encode() if isinstance(new, str) else new)


def test_make_without_a_change_is_empty() -> None:
    assert make("a.py", "same\n", "same\n") == ""
    assert make("a.py", "same\n", b"same\n") == ""
    assert make("a.py", None, None) == ""


def test_make_refuses_paths_outside_the_tree() -> None:
    for path in ("/etc/passwd", "../up.py", "a/../../b.py", ".git/config", "", ".", "a//b"):
        with pytest.raises(ValueError, match="not a relative path"):
            make(path, None, "x\n")
