"""A node's change to its parent, as reviewers read it: the diff, read once as git reads it
(`benchmarks.patches`), and each changed file before and after, taken from the git store
(never from a checkout: nothing an agent wrote is followed or run)."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch

from archive import Archive
from benchmarks import patches

DEFAULT_PROTECTED = ("tests/*", "test_*.py", "*_test.py", "conftest.py", "llm.py")
"""The agent's own tests (its admission check) and the code it talks to the FM with."""


@dataclass(frozen=True)
class FileChange:
    path: str
    """The file's path in the child (in the parent for a deletion)."""
    patch: patches.FilePatch
    before: bytes | None
    """None: the file is new."""
    after: bytes | None
    """None: the file was deleted."""

    @property
    def binary(self) -> bool:
        probe = patches.BINARY_PROBE
        return self.patch.binary or any(b"\0" in c[:probe] for c in (self.before, self.after) if c)

    def text(self, side: str) -> str | None:
        content = self.before if side == "before" else self.after
        return None if content is None else content.decode("utf-8", errors="replace")

    @property
    def is_python(self) -> bool:
        return self.path.endswith(".py") and not self.binary

    @property
    def is_test(self) -> bool:
        name = self.path.rsplit("/", 1)[-1]
        return (
            self.path.startswith("tests/")
            or "/tests/" in self.path
            or name.startswith("test_")
            or name.endswith("_test.py")
            or name == "conftest.py"
        )


@dataclass(frozen=True)
class Change:
    node: str
    parent: str | None
    tree: str
    """The child's tree: what a review and a decision are about."""
    diff: str
    files: list[FileChange]

    @property
    def lines(self) -> int:
        """Lines added and removed."""
        return sum(len(f.patch.added) + len(f.patch.removed) for f in self.files)


def protected(path: str, globs: tuple[str, ...] | list[str]) -> bool:
    return any(fnmatch(path, g) or fnmatch(path.rsplit("/", 1)[-1], g) for g in globs)


def change_of(archive: Archive, node_id: str) -> Change:
    """The node's change to its parent (a root: to nothing)."""
    node = archive.node(node_id)
    parent = archive.node(node.parent_id) if node.parent_id else None
    old = parent.commit if parent else None
    diff = archive.git.diff(old, node.commit)
    files = []
    for patch in patches.parse(diff):
        before = archive.git.read_file(old, patch.old_path) if old and patch.old_path else None
        after = archive.git.read_file(node.commit, patch.new_path) if patch.new_path else None
        path = patch.new_path or patch.old_path or ""
        files.append(FileChange(path, patch, before, after))
    return Change(node.id, node.parent_id, node.tree, diff, files)
