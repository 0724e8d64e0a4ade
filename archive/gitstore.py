"""The git object store: one bare repository holding every agent of an archive.

Agents are written in-process as loose objects (hash, compress, fsync, rename) because
spawning `git` per object costs milliseconds and adding a node must stay fast; reading,
diffing and bundling go through GitPython and the `git` binary.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import tempfile
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import git
import pathspec
from gitdb.db.pack import PackedDB

from archive.errors import InvalidAgent, MissingObject

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
NODE_REF_PREFIX = "refs/dgm/nodes/"
# Never part of an agent: VCS metadata and Python bytecode.
DEFAULT_IGNORES = (".git", "__pycache__/", "*.pyc")

_MODE_TREE = 0o40000
_MODE_FILE = 0o100644
_MODE_EXEC = 0o100755
_MODE_LINK = 0o120000


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: tuple[str, ...]


class _IgnoreRules:
    """`.gitignore` files apply to the directory that holds them and everything below it."""

    def __init__(self, rules: tuple[tuple[str, pathspec.PathSpec], ...]):
        self._rules = rules

    @classmethod
    def defaults(cls) -> _IgnoreRules:
        return cls((("", pathspec.GitIgnoreSpec.from_lines(DEFAULT_IGNORES)),))

    def entering(self, directory: Path, rel: str) -> _IgnoreRules:
        gitignore = directory / ".gitignore"
        # like git, a .gitignore that is a link is not followed: it may point anywhere
        if gitignore.is_symlink() or not gitignore.is_file():
            return self
        spec = pathspec.GitIgnoreSpec.from_lines(gitignore.read_text(errors="replace").splitlines())
        return _IgnoreRules((*self._rules, (rel, spec)))

    def ignored(self, rel: str) -> bool:
        return any(
            rel.startswith(base) and spec.match_file(rel[len(base) :]) for base, spec in self._rules
        )


class GitStore:
    """A bare repository under `<archive>/agents.git`."""

    def __init__(self, path: Path, *, durable: bool = True):
        self.path = Path(path)
        self._objects = str(self.path / "objects")
        self._durable = durable
        try:
            self._repo = git.Repo(self.path)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise MissingObject(
                f"git store {self.path} is missing or not a git repository; "
                "restore it from a backup"
            ) from exc
        self._packs = PackedDB(os.path.join(self._objects, "pack"))
        self._known: set[bytes] = set()  # objects known to be stored; cleared by gc
        self._lock = threading.Lock()

    @classmethod
    def init(cls, path: Path) -> GitStore:
        repo = git.Repo.init(path, bare=True, mkdir=True)
        with repo.config_writer() as cfg:
            # gc must finish before the command that asked for it returns.
            cfg.set_value("gc", "autoDetach", "false")
            cfg.set_value("core", "logAllRefUpdates", "false")
        repo.close()
        return cls(path)

    def close(self) -> None:
        with self._lock:
            self._repo.close()

    # -- writing -----------------------------------------------------------------------------

    def write_directory(self, directory: Path) -> str:
        """Store a directory's files as a tree (honouring `.gitignore`); return its hash."""
        directory = Path(directory)
        if not directory.is_dir():
            raise InvalidAgent(f"{directory} is not a directory; give the agent's folder")
        new_dirs: set[str] = set()
        binsha = self._write_tree(str(directory), "", _IgnoreRules.defaults(), new_dirs)
        if binsha is None:
            raise InvalidAgent(f"{directory} holds no files to store; an agent needs its code")
        self._sync_dirs(new_dirs)
        return binsha.hex()

    def write_commit(
        self, tree: str, parent: str | None, message: str, when: datetime, author: str
    ) -> str:
        stamp = f"{author} <dgm@localhost> {int(when.timestamp())} +0000"
        lines = [f"tree {tree}"]
        if parent:
            lines.append(f"parent {parent}")
        lines += [f"author {stamp}", f"committer {stamp}", "", message.rstrip("\n"), ""]
        new_dirs: set[str] = set()
        sha = self._write_object(b"commit", "\n".join(lines).encode(), new_dirs).hex()
        self._sync_dirs(new_dirs)
        return sha

    def set_node_ref(self, node_id: str, commit: str) -> None:
        """Point `refs/dgm/nodes/<id>` at a commit, with git's lock-file protocol."""
        self._set_ref(f"{NODE_REF_PREFIX}{node_id}", commit)

    def set_ref_blob(self, ref: str, data: bytes) -> None:
        """Store `data` as a blob and point `ref` at it."""
        new_dirs: set[str] = set()
        sha = self._write_object(b"blob", data, new_dirs).hex()
        self._sync_dirs(new_dirs)
        self._set_ref(ref, sha)

    def read_ref_blob(self, ref: str) -> bytes | None:
        """The blob `ref` points at (loose, or packed by gc); None when there is no such ref."""
        path = self.path / ref
        sha = path.read_text().strip() if path.is_file() else None
        packed = self.path / "packed-refs"
        if sha is None and packed.is_file():
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref):
                    sha = line.split()[0]
        if sha is None:
            return None
        with self._lock:
            try:
                return self._repo.odb.stream(bytes.fromhex(sha)).read()
            except (ValueError, KeyError, OSError) as exc:
                raise MissingObject(f"{ref} points at {sha}, which is missing from {self.path}; "
                                    "the git store is damaged") from exc  # fmt: skip

    def _set_ref(self, ref: str, sha: str) -> None:
        path = self.path / ref
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = path.with_name(path.name + ".lock")
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, f"{sha}\n".encode())
            if self._durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(lock, path)
        self._sync_dirs({path.parent})

    def _write_tree(
        self, directory: str, rel: str, rules: _IgnoreRules, new_dirs: set[str]
    ) -> bytes | None:
        rules = rules.entering(Path(directory), rel)
        entries: list[tuple[bytes, int, bytes]] = []
        try:
            scan = list(os.scandir(directory))
        except OSError as exc:
            raise InvalidAgent(f"cannot read {directory}: {exc.strerror}") from exc
        for entry in scan:
            path = f"{rel}{entry.name}"
            name = os.fsencode(entry.name)
            if entry.is_symlink():
                if rules.ignored(path):
                    continue
                target = os.fsencode(os.readlink(entry.path))
                entries.append((self._write_object(b"blob", target, new_dirs), _MODE_LINK, name))
            elif entry.is_dir():
                if rules.ignored(path + "/"):
                    continue
                sub = self._write_tree(entry.path, path + "/", rules, new_dirs)
                if sub is not None:
                    entries.append((sub, _MODE_TREE, name))
            elif entry.is_file():
                if rules.ignored(path):
                    continue
                mode = _MODE_EXEC if entry.stat().st_mode & stat.S_IXUSR else _MODE_FILE
                with open(entry.path, "rb") as f:
                    data = f.read()
                entries.append((self._write_object(b"blob", data, new_dirs), mode, name))
            # sockets, fifos and devices are not code: skipped
        if not entries:
            return None
        # git orders tree entries by name, comparing a subtree's name as if it ended in "/".
        entries.sort(key=lambda e: e[2] + b"/" if e[1] == _MODE_TREE else e[2])
        body = b"".join(b"%o %s\0%s" % (mode, name, sha) for sha, mode, name in entries)
        return self._write_object(b"tree", body, new_dirs)

    def _write_object(self, kind: bytes, data: bytes, new_dirs: set[str]) -> bytes:
        raw = b"%s %d\0%s" % (kind, len(data), data)
        binsha = hashlib.sha1(raw).digest()
        if self._has(binsha):
            return binsha
        hexsha = binsha.hex()
        target_dir = os.path.join(self._objects, hexsha[:2])
        os.makedirs(target_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._objects, prefix="tmp_obj_")
        try:
            os.write(fd, zlib.compress(raw))
            if self._durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o444)
        os.rename(tmp, os.path.join(target_dir, hexsha[2:]))
        new_dirs.add(target_dir)
        self._known.add(binsha)
        return binsha

    def _has(self, binsha: bytes) -> bool:
        # Most of a child's files are its parent's: remembering what this process has seen
        # saves a stat and a pack-index lookup per file.
        if binsha in self._known:
            return True
        hexsha = binsha.hex()
        found = os.path.exists(os.path.join(self._objects, hexsha[:2], hexsha[2:]))
        if not found:
            self._packs.update_cache()  # cheap unless a gc changed the pack directory
            found = self._packs.has_object(binsha)
        if found:
            self._known.add(binsha)
        return found

    def _sync_dirs(self, dirs: Iterable[str | Path]) -> None:
        if not self._durable:
            return
        for d in dirs:
            fd = os.open(d, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # -- reading -----------------------------------------------------------------------------

    def _commit(self, sha: str) -> git.Commit:
        try:
            commit = self._repo.commit(sha)
            commit.tree  # noqa: B018 - forces the object to be read
        except (ValueError, git.BadName, git.BadObject) as exc:
            raise MissingObject(
                f"commit {sha} is missing from {self.path}; the git store is damaged "
                "(run `dgm fsck` and restore agents.git from a backup)"
            ) from exc
        return commit

    def read_file(self, commit: str, path: str) -> bytes:
        with self._lock:
            tree = self._commit(commit).tree
            try:
                item = tree / path.strip("/")
            except KeyError:
                raise InvalidAgent(f"no file {path!r} in commit {commit[:12]}") from None
            if item.type != "blob":
                raise InvalidAgent(f"{path!r} is a directory in commit {commit[:12]}, not a file")
            return item.data_stream.read()

    def list_files(self, commit: str) -> list[str]:
        with self._lock:
            return sorted(
                item.path for item in self._commit(commit).tree.traverse() if item.type == "blob"
            )

    def checkout(self, commit: str, directory: Path) -> None:
        """Write a commit's files into a directory (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            for item in self._commit(commit).tree.traverse():
                if item.type != "blob":
                    continue
                target = directory / item.path
                target.parent.mkdir(parents=True, exist_ok=True)
                data = item.data_stream.read()
                if item.mode == _MODE_LINK:
                    os.symlink(os.fsdecode(data), target)
                else:
                    target.write_bytes(data)
                    if item.mode == _MODE_EXEC:
                        target.chmod(0o755)

    def tar(self, commit: str) -> bytes:
        """A commit's files as a tar (what travels to another machine instead of a checkout);
        links stay links."""
        proc = subprocess.run(
            ["git", "--git-dir", str(self.path), "archive", "--format=tar", commit],
            capture_output=True,
        )
        if proc.returncode != 0:
            reason = proc.stderr.decode(errors="replace").strip() or f"exit {proc.returncode}"
            raise MissingObject(f"git archive failed in {self.path}: {reason.splitlines()[-1]}")
        return proc.stdout

    def diff(self, old: str | None, new: str, *, stat_only: bool = False) -> str:
        with self._lock:  # GitPython's repository object is not safe across threads
            self._commit(new)
            if old is not None:
                self._commit(old)
        args = ["--stat"] if stat_only else []
        return self._git("diff", *args, old or EMPTY_TREE, new)

    def commit_infos(self, shas: Iterable[str]) -> dict[str, CommitInfo | None]:
        """Read many commits with one `git cat-file --batch`; None marks a missing one."""
        wanted = list(shas)
        if not wanted:
            return {}
        proc = subprocess.run(
            ["git", "--git-dir", str(self.path), "cat-file", "--batch"],
            input="\n".join(wanted).encode() + b"\n",
            capture_output=True,
            check=True,
        )
        out, pos, result = proc.stdout, 0, {}
        for sha in wanted:
            end = out.index(b"\n", pos)
            header = out[pos:end].split()
            pos = end + 1
            if header[-1] == b"missing" or header[1] != b"commit":
                result[sha] = None
                if header[-1] != b"missing":
                    pos += int(header[2]) + 1
                continue
            size = int(header[2])
            body = out[pos : pos + size].decode(errors="replace")
            pos += size + 1
            tree, parents = "", []
            for line in body.split("\n"):
                if not line:
                    break
                key, _, value = line.partition(" ")
                if key == "tree":
                    tree = value
                elif key == "parent":
                    parents.append(value)
            result[sha] = CommitInfo(sha, tree, tuple(parents))
        return result

    def node_refs(self) -> dict[str, str]:
        out = self._git("for-each-ref", "--format=%(refname) %(objectname)", NODE_REF_PREFIX)
        refs = {}
        for line in out.splitlines():
            name, _, sha = line.partition(" ")
            refs[name.removeprefix(NODE_REF_PREFIX)] = sha
        return refs

    # -- whole-store operations ----------------------------------------------------------------

    def bundle(self, commit: str, out: Path) -> None:
        """Write a git bundle whose `main` is the commit and whose history is its lineage.

        The bundle is cut from a scratch repository that borrows this store's objects through
        `alternates`, so the store itself gains no branch or HEAD.
        """
        self._commit(commit)
        with tempfile.TemporaryDirectory(prefix="dgm-bundle-") as tmp:
            scratch = Path(tmp) / "scratch.git"
            run = ["git", "--git-dir", str(scratch)]
            subprocess.run(
                ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(scratch)],
                check=True,
            )
            alternates = scratch / "objects" / "info" / "alternates"
            alternates.write_text(f"{os.path.realpath(self._objects)}\n")
            subprocess.run([*run, "update-ref", "refs/heads/main", commit], check=True)
            subprocess.run(
                [*run, "bundle", "create", "--quiet", str(out), "HEAD", "refs/heads/main"],
                check=True,
                capture_output=True,
            )

    def gc(self, *, auto: bool = False) -> None:
        self._git("gc", "--quiet", *(["--auto"] if auto else []))
        self._packs.update_cache(force=True)
        self._known.clear()  # gc may prune unreachable objects

    def _git(self, *args: str) -> str:
        proc = subprocess.run(
            ["git", "--git-dir", str(self.path), *args], capture_output=True, text=True
        )
        if proc.returncode != 0:
            reason = (proc.stderr.strip() or f"exit code {proc.returncode}").splitlines()[-1]
            raise MissingObject(f"git {args[0]} failed in {self.path}: {reason}")
        return proc.stdout
