"""Git patches, read the way `git apply` reads them and written by git itself.

Graders keep only the file sections of an agent's patch that it may change and hand the rest
to `git apply`. The agent is rewarded for what gets through, so the reading here follows git's
own parser (apply.c: `find_header`, `parse_git_diff_header`, `parse_fragment`,
`parse_binary`, ...) rule for rule, on bytes as git sees them, and every reading is checked
against `git apply --numstat --summary` before it is returned. Patches are written by
`git diff --no-index`, never by hand.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Literal

Kind = Literal["create", "delete", "modify", "rename", "copy"]

SPACE = b" \t\n\v\f\r"  # C's isspace()
HASH_HEX = 40  # SHA-1 object names, what git assumes outside a repository
BINARY_PROBE = 8000  # git calls content binary if a NUL shows in this many first bytes


class PatchError(ValueError):
    """A patch git would refuse, or read differently from what it seems to say."""


@dataclass(frozen=True)
class FilePatch:
    """One file's patch, as git reads it."""

    old_path: str | None  # None: /dev/null (a creation)
    new_path: str | None  # None: /dev/null (a deletion)
    old_mode: int | None  # e.g. 0o100644; None when the patch does not say
    new_mode: int | None
    kind: Kind
    binary: bool
    text: str  # the verbatim slice of the patch, header line through last hunk
    added: list[tuple[int, str]]  # (line number in the new file, line without its newline)
    removed: list[tuple[int, str]]  # (line number in the old file, line without its newline)

    @property
    def paths(self) -> list[str]:
        """The paths this patch touches (old first), each once."""
        return list(dict.fromkeys(p for p in (self.old_path, self.new_path) if p is not None))


def parse(patch: str) -> list[FilePatch]:
    """The file patches in `patch`, in the order git reads them.

    Raises PatchError when git refuses the patch (with git's message), when the patch is one
    git would read in a way that depends on the tree it is applied to, or when this reading
    and `git apply --numstat --summary` disagree."""
    if not patch.strip():
        return []
    data = _encode(patch)
    if b"\0" in data:
        raise PatchError("patch contains a NUL byte")  # git's C strings would end there
    git_says = _git_numstat_summary(data)
    sections = _Reader(data).sections()
    _compare(sections, git_says)
    return [section.file_patch() for section in sections]


def join(files: Iterable[FilePatch]) -> str:
    """One patch of `files` (say, those a filter kept), which git reads as exactly those
    files; PatchError when it would not (a section that only makes sense after one left out)."""
    kept = [replace(f, text=f.text if f.text.endswith("\n") else f.text + "\n") for f in files]
    patch = "".join(f.text for f in kept)
    if parse(patch) != kept:
        raise PatchError("the kept file patches read differently once joined")
    return patch


def apply(files: Iterable[FilePatch], folder: Path) -> None:
    """Apply the file patches with `git apply` in `folder` (no repository needed): git, not
    this module, writes the files, refusing paths outside the folder and beyond links;
    PatchError with git's message when it cannot."""
    patch = join(files)
    if not patch:
        return
    proc = subprocess.run(
        ["git", "apply", "--whitespace=nowarn", "-"],
        input=_encode(patch),
        cwd=folder,
        env=_git_env(str(folder)),
        capture_output=True,
    )
    if proc.returncode:
        said = proc.stderr.decode(errors="replace").strip().splitlines() or ["no reason given"]
        raise PatchError(f"the patch does not apply: {said[-1]}")


def make(path: str, old: str | bytes | None, new: str | bytes | None) -> str:
    """The patch `git diff` gives for turning `old` into `new` in the regular file at
    `path` (None: no file on that side); "" when they are equal."""
    before, after = _as_bytes(old), _as_bytes(new)
    if before == after:
        return ""
    _check_relative(path)
    binary = any(_looks_binary(content) for content in (before, after) if content is not None)
    with tempfile.TemporaryDirectory(prefix="patch-make-") as scratch:
        sides = _write_sides(Path(scratch), path, before, after)
        flags = ["--binary"] if binary else []
        proc = subprocess.run(
            ["git", "diff", "--no-index", *flags, *sides],
            cwd=scratch,
            env=_git_env(scratch),
            capture_output=True,
        )
    if proc.returncode != 1:  # 1: the sides differ
        raise RuntimeError(f"git diff failed: {_show(proc.stderr)}")
    return proc.stdout.decode("utf-8", "surrogateescape")


# --- writing ----------------------------------------------------------------------------------


def _as_bytes(content: str | bytes | None) -> bytes | None:
    return content.encode("utf-8", "surrogateescape") if isinstance(content, str) else content


def _looks_binary(content: bytes) -> bool:
    return b"\0" in content[:BINARY_PROBE]


def _check_relative(path: str) -> None:
    pure = PurePosixPath(path)
    normal = pure.as_posix() == path and pure.parts and not pure.is_absolute()
    if not normal or {"..", ".git"} & {*pure.parts}:
        raise ValueError(f"not a relative path inside a repository: {path!r}")


def _write_sides(scratch: Path, path: str, old: bytes | None, new: bytes | None) -> list[str]:
    """Write the two sides under `scratch`; the arguments that make `git diff --no-index`
    name them `a/<path>` and `b/<path>`, as a repository's diff does."""

    def write(rel: str, content: bytes) -> None:
        target = scratch / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)

    # git names a file compared with /dev/null a/<name> and b/<name> on both sides
    if old is None:
        write(path, new)
        return ["--", "/dev/null", path]
    if new is None:
        write(path, old)
        return ["--", path, "/dev/null"]
    # two folders named a and b, shown without git's own a/ b/ prefixes
    write(f"a/{path}", old)
    write(f"b/{path}", new)
    return ["--no-prefix", "--", f"a/{path}", f"b/{path}"]


# --- checking a reading with git --------------------------------------------------------------


def _encode(patch: str) -> bytes:
    try:
        return patch.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as error:
        raise PatchError(f"patch has characters no file can hold: {error}") from None


def _show(raw: bytes) -> str:
    """Bytes from a patch or from git, as one line of a message."""
    return raw.decode("utf-8", "backslashreplace").rstrip("\n").replace("\n", "\\n")


def _git_env(scratch: str) -> dict[str, str]:
    """git run on our behalf: no caller's repository or configuration, English messages."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        # a repository around the scratch folder would change how git reads paths
        GIT_CEILING_DIRECTORIES=str(Path(scratch).parent),
        LC_ALL="C",
    )
    return env


def _git_numstat_summary(data: bytes) -> bytes:
    """What `git apply --numstat --summary -z` prints for the patch (it applies nothing);
    PatchError with git's message when git refuses it."""
    with tempfile.TemporaryDirectory(prefix="patch-check-") as scratch:
        proc = subprocess.run(
            ["git", "apply", "--numstat", "--summary", "-z"],
            input=data,
            cwd=scratch,
            env=_git_env(scratch),
            capture_output=True,
        )
    # at a corrupt binary patch git stops reading, says so, and still exits 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith((b"error:", b"fatal:"))]
    if proc.returncode or errors:
        said = _show(errors[0].split(b":", 1)[1].strip() if errors else proc.stderr.strip())
        said = said or f"exit status {proc.returncode}"
        raise PatchError(said if said.startswith("git apply: ") else f"git apply: {said}")
    return proc.stdout


def _compare(sections: list[_Section], git_says: bytes) -> None:
    """Raise PatchError unless git's numstat and summary are what this reading predicts."""
    predicted = b"".join(s.numstat() for s in sections) + b"".join(s.summary() for s in sections)
    if predicted != git_says:
        raise PatchError(f"git reads the patch differently: {_difference(sections, git_says)}")


def _difference(sections: list[_Section], git_says: bytes) -> str:
    *counts, summary = git_says.split(b"\0")  # -z: one NUL-ended record per file patch
    for number in range(max(len(sections), len(counts))):
        ours = sections[number].numstat()[:-1] if number < len(sections) else b"nothing"
        theirs = counts[number] if number < len(counts) else b"nothing"
        if ours != theirs:
            return f"file patch {number + 1}: git {_show(theirs)!r}, parse {_show(ours)!r}"
    pos = 0
    for number, section in enumerate(sections, 1):
        ours = section.summary()
        if not summary.startswith(ours, pos):
            theirs = summary[pos:].split(b"\n", 1)[0]
            return f"summary of file patch {number}: git {_show(theirs)!r}, parse {_show(ours)!r}"
        pos += len(ours)
    return f"git's summary goes on: {_show(summary[pos:])!r}"


# --- reading, as git does ---------------------------------------------------------------------


@dataclass
class _Section:
    """One file patch as git's parser holds it (apply.c's `struct patch`). In a traditional
    patch is_new and is_delete stay -1 ("not said") until its hunks decide them."""

    is_new: int = -1
    is_delete: int = -1
    is_rename: bool = False
    is_copy: bool = False
    def_name: bytes | None = None  # the name on the `diff --git` line, if both sides agree
    old_name: bytes | None = None
    new_name: bytes | None = None
    old_mode: int = 0
    new_mode: int = 0
    score: int = 0  # similarity or dissimilarity index
    binary: bool = False
    first_extension: int | None = None  # where a creation/deletion/rename/copy line was
    added: list[tuple[int, str]] = field(default_factory=list)
    removed: list[tuple[int, str]] = field(default_factory=list)
    text: bytes = b""

    def name(self) -> bytes:
        return self.new_name if self.new_name is not None else self.old_name or b""

    def kind(self) -> Kind:
        if self.is_new == 1:
            return "create"
        if self.is_delete == 1:
            return "delete"
        if self.is_rename:
            return "rename"
        return "copy" if self.is_copy else "modify"

    def changes_metadata(self) -> bool:
        mode_change = self.old_mode and self.new_mode and self.old_mode != self.new_mode
        return bool(
            self.is_rename or self.is_copy or self.is_new > 0 or self.is_delete or mode_change
        )

    def file_patch(self) -> FilePatch:
        kind = self.kind()
        return FilePatch(
            old_path=_path(self.old_name),
            new_path=_path(self.new_name),
            old_mode=None if kind == "create" else self.old_mode or None,
            # an `index` line's mode, or none at all, leaves the mode as it was
            new_mode=None if kind == "delete" else self.new_mode or self.old_mode or None,
            kind=kind,
            binary=self.binary,
            text=self.text.decode("utf-8", "surrogateescape"),
            added=self.added,
            removed=self.removed,
        )

    def numstat(self) -> bytes:
        """This file patch's record in `git apply --numstat -z`."""
        if self.binary:
            return b"-\t-\t" + self.name() + b"\0"
        return b"%d\t%d\t%s\0" % (len(self.added), len(self.removed), self.name())

    def summary(self) -> bytes:
        """This file patch's lines in `git apply --summary` (summary_patch_list)."""
        if self.is_new:
            return _created_or_deleted(b"create", self.new_mode, self.new_name)
        if self.is_delete:
            return _created_or_deleted(b"delete", self.old_mode, self.old_name)
        if self.is_rename or self.is_copy:
            return self._renamed_or_copied() + self._mode_change(named=False)
        if self.score:
            return b" rewrite %s (%d%%)\n" % (self.new_name, self.score) + self._mode_change(False)
        return self._mode_change(named=True)

    def _renamed_or_copied(self) -> bytes:
        word = b"rename" if self.is_rename else b"copy"
        old, new = self.old_name or b"", self.new_name or b""
        common = 0  # how much of both names is the same leading folders
        while True:
            slash = old.find(b"/", common)
            if slash < 0 or new.find(b"/", common) != slash or old[:slash] != new[:slash]:
                break
            common = slash + 1
        if common:
            return b" %s %s{%s => %s} (%d%%)\n" % (
                word,
                old[:common],
                old[common:],
                new[common:],
                self.score,
            )
        return b" %s %s => %s (%d%%)\n" % (word, old, new, self.score)

    def _mode_change(self, named: bool) -> bytes:
        if not (self.old_mode and self.new_mode and self.old_mode != self.new_mode):
            return b""
        change = b" mode change %06o => %06o" % (self.old_mode, self.new_mode)
        return change + (b" %s\n" % self.new_name if named else b"\n")


def _created_or_deleted(word: bytes, mode: int, name: bytes | None) -> bytes:
    if mode:
        return b" %s mode %06o %s\n" % (word, mode, name)
    return b" %s %s\n" % (word, name)


def _path(name: bytes | None) -> str | None:
    return None if name is None else name.decode("utf-8", "surrogateescape")


def _line_end(data: bytes, pos: int) -> int:
    """Where the line at `pos` ends: after its newline, or at the end of the data."""
    newline = data.find(b"\n", pos)
    return len(data) if newline < 0 else newline + 1


def _line_stop(data: bytes, pos: int) -> int:
    """Where the newline ending the line at `pos` is, or the end of the data."""
    newline = data.find(b"\n", pos)
    return len(data) if newline < 0 else newline


def _text(line: bytes) -> str:
    """A hunk line without its mark and its newline."""
    return line[1:-1].decode("utf-8", "surrogateescape")


class _Reader:
    """git's patch parser: apply.c's apply_patch and parse_chunk, and what they call."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        # -p1, until a traditional header whose names have no folder makes git guess -p0
        self.p_value = 1
        self.p_known = False

    def sections(self) -> list[_Section]:
        found = []
        pos = 0
        while pos < len(self.data):
            header = self._find_header(pos)
            if header is None:
                break
            start, body, section = header
            end = self._read_body(section, body)
            section.text = self.data[start:end]
            _check_unambiguous(section)
            found.append(section)
            pos = end
        return found

    def _line_number(self, pos: int) -> int:
        return self.data.count(b"\n", 0, pos) + 1

    def _find_header(self, pos: int) -> tuple[int, int, _Section] | None:
        """The next file header from `pos` on (find_header): where its section starts, where
        its hunks start, and what it says. Lines before it are garbage that git skips.

        A `diff --git` line with no header lines after it is skipped too, but, as in git,
        the names it gave stay: a later `diff --git` header without names of its own takes
        them. Such a section starts at the skipped line, so that its text reads the same."""
        data, section, start = self.data, _Section(), None
        while pos < len(data):
            end = _line_end(data, pos)
            if end - pos < 6:
                pass
            elif data.startswith(b"@@ -", pos):
                if _hunk_ranges(data[pos:end]) is not None:
                    line = self._line_number(pos)
                    raise PatchError(
                        f"patch fragment without header at line {line}: {_show(data[pos:end])}"
                    )
            elif len(data) - end < 6:
                break
            elif data.startswith(b"diff --git ", pos):
                start = pos if start is None else start
                body = self._git_header(section, pos, end)
                if body > end:
                    return start, body, section
            elif data.startswith(b"--- ", pos) and data.startswith(b"+++ ", end):
                hunks = _line_end(data, end)
                # a hunk must follow, at least "@@ -0,0 +1 @@\n"
                if len(data) - pos >= hunks - end + 14 and data.startswith(b"@@ -", hunks):
                    self._traditional_header(section, pos + 4, end + 4)
                    return pos if start is None else start, hunks, section
            pos = end
        return None

    # --- `diff --git` headers (parse_git_diff_header) ---

    def _git_header(self, section: _Section, start: int, end: int) -> int:
        """Read a `diff --git` line and the extended header lines after it into `section`;
        where its hunks start."""
        data = self.data
        section.is_new = section.is_delete = 0
        section.def_name = _git_header_name(self.p_value, data, start, end)
        pos = end
        while pos < len(data):
            line_end = _line_end(data, pos)
            if data[line_end - 1] != ord("\n") or self._header_line(section, pos):
                break
            pos = line_end
        self._settle_names(section, pos)
        return pos

    def _header_line(self, section: _Section, pos: int) -> bool:
        """Take in the header line at `pos`; True if it ends the header instead."""
        for prefix, read in self.HEADER_LINES:
            if self.data.startswith(prefix, pos):
                if read is None:
                    return True
                read(self, section, pos + len(prefix), pos)
                self._check_extensions(section, pos)
                return False
        return True  # any other line ends the header too

    def _old_name_line(self, section: _Section, value: int, line: int) -> None:
        old = self._verify_name(section.old_name, value, line, section.is_new, "old")
        section.old_name = old

    def _new_name_line(self, section: _Section, value: int, line: int) -> None:
        new = self._verify_name(section.new_name, value, line, section.is_delete, "new")
        section.new_name = new

    def _verify_name(
        self, name: bytes | None, value: int, line: int, is_null: int, side: str
    ) -> bytes | None:
        """A `---` or `+++` line's name, which must agree with what the header said
        (gitdiff_verify_name); it names the file when nothing else did."""
        if name is None and not is_null:
            return _find_name(self.data, value, None, self.p_value, TERM_TAB)
        number = self._line_number(line)
        if name is not None:
            if is_null:
                raise PatchError(
                    f"bad git-diff - expected /dev/null, got {_show(name)} on line {number}"
                )
            if _find_name(self.data, value, None, self.p_value, TERM_TAB) != name:
                raise PatchError(f"bad git-diff - inconsistent {side} filename on line {number}")
        elif not _is_dev_null(self.data, value):
            raise PatchError(f"bad git-diff - expected /dev/null on line {number}")
        return name

    def _old_mode_line(self, section: _Section, value: int, line: int) -> None:
        section.old_mode = self._mode(value, line)

    def _new_mode_line(self, section: _Section, value: int, line: int) -> None:
        section.new_mode = self._mode(value, line)

    def _deleted_file_line(self, section: _Section, value: int, line: int) -> None:
        section.is_delete = 1
        section.old_name = section.def_name
        section.old_mode = self._mode(value, line)

    def _new_file_line(self, section: _Section, value: int, line: int) -> None:
        section.is_new = 1
        section.new_name = section.def_name
        section.new_mode = self._mode(value, line)

    def _copy_from_line(self, section: _Section, value: int, line: int) -> None:
        section.is_copy = True
        section.old_name = self._moved_name(value)

    def _copy_to_line(self, section: _Section, value: int, line: int) -> None:
        section.is_copy = True
        section.new_name = self._moved_name(value)

    def _rename_from_line(self, section: _Section, value: int, line: int) -> None:
        section.is_rename = True
        section.old_name = self._moved_name(value)

    def _rename_to_line(self, section: _Section, value: int, line: int) -> None:
        section.is_rename = True
        section.new_name = self._moved_name(value)

    def _moved_name(self, value: int) -> bytes | None:
        # rename and copy lines carry no a/ or b/, and their names end only at the line's end
        return _find_name(self.data, value, None, max(self.p_value - 1, 0), 0)

    def _score_line(self, section: _Section, value: int, line: int) -> None:
        score = _strtoul(self.data, value)
        if score <= 100:
            section.score = score

    def _index_line(self, section: _Section, value: int, line: int) -> None:
        """`index <old>..<new>[ <mode>]`: a mode there is the old (and unchanged) one. Like
        git, the search for `..` and the mode is not held to the line."""
        data = self.data
        dots = data.find(b".", value)
        if dots < 0 or not data.startswith(b"..", dots) or dots - value > HASH_HEX:
            return
        new = dots + 2
        stop = _line_stop(data, new)
        space = data.find(b" ", new)
        if 0 <= space < stop:
            stop = space
        if stop - new <= HASH_HEX and stop == space:
            section.old_mode = self._mode(space + 1, line)

    def _mode(self, value: int, line: int) -> int:
        """An octal mode as C's strtoul reads it; whitespace must follow (parse_mode_line)."""
        match = OCTAL.match(self.data, value)
        if not match or match.end() >= len(self.data) or self.data[match.end()] not in SPACE:
            rest = self.data[value : _line_end(self.data, value)]
            raise PatchError(f"invalid mode on line {self._line_number(line)}: {_show(rest)}")
        mode = int(match[2], 8)
        return (-mode if match[1] == b"-" else mode) % 2**32

    def _check_extensions(self, section: _Section, line: int) -> None:
        """At most one of creation, deletion, rename and copy (check_header_line)."""
        said = (
            (section.is_delete == 1) + (section.is_new == 1) + section.is_rename + section.is_copy
        )
        if said > 1:
            first = self._line_number(section.first_extension or line)
            raise PatchError(f"inconsistent header lines {first} and {self._line_number(line)}")
        if said and section.first_extension is None:
            section.first_extension = line

    def _settle_names(self, section: _Section, end: int) -> None:
        """The `diff --git` line names the file when no other header line did."""
        if section.old_name is None and section.new_name is None:
            if section.def_name is None:
                p = self.p_value
                raise PatchError(
                    "git diff header lacks filename information when removing "
                    f"{p} leading pathname component{'' if p == 1 else 's'} "
                    f"(line {self._line_number(end)})"
                )
            section.old_name = section.new_name = section.def_name
        if (section.new_name is None and not section.is_delete) or (
            section.old_name is None and not section.is_new
        ):
            number = self._line_number(end)
            raise PatchError(f"git diff header lacks filename information (line {number})")

    HEADER_LINES = (
        (b"@@ -", None),
        (b"--- ", _old_name_line),
        (b"+++ ", _new_name_line),
        (b"old mode ", _old_mode_line),
        (b"new mode ", _new_mode_line),
        (b"deleted file mode ", _deleted_file_line),
        (b"new file mode ", _new_file_line),
        (b"copy from ", _copy_from_line),
        (b"copy to ", _copy_to_line),
        (b"rename old ", _rename_from_line),
        (b"rename new ", _rename_to_line),
        (b"rename from ", _rename_from_line),
        (b"rename to ", _rename_to_line),
        (b"similarity index ", _score_line),
        (b"dissimilarity index ", _score_line),
        (b"index ", _index_line),
    )

    # --- traditional `--- ` / `+++ ` headers (parse_traditional_patch) ---

    def _traditional_header(self, section: _Section, first: int, second: int) -> None:
        """Read `--- <old>` and `+++ <new>` names: /dev/null or a timestamp at the epoch marks
        a side missing; otherwise the new name, or the old one if the new one only adds to
        it (`x` over `x.orig`)."""
        data = self.data
        if not self.p_known:
            self._guess_p_value(first, second)
        p = self.p_value
        if _is_dev_null(data, first):
            section.is_new, section.is_delete = 1, 0
            name = section.new_name = _find_name_traditional(data, second, None, p)
        elif _is_dev_null(data, second):
            section.is_new, section.is_delete = 0, 1
            name = section.old_name = _find_name_traditional(data, first, None, p)
        else:
            old = _find_name_traditional(data, first, None, p)
            name = _find_name_traditional(data, second, old, p)
            if _has_epoch_timestamp(data, first):
                section.is_new, section.is_delete = 1, 0
                section.new_name = name
            elif _has_epoch_timestamp(data, second):
                section.is_new, section.is_delete = 0, 1
                section.old_name = name
            else:
                section.old_name = section.new_name = name
        if name is None:
            number = self._line_number(first)
            raise PatchError(f"unable to find filename in patch at line {number}")

    def _guess_p_value(self, first: int, second: int) -> None:
        """Names without a folder make git read the rest of the patch with -p0
        (guess_p_value, for git run at the top of the tree)."""
        old, new = _p_guess(self.data, first), _p_guess(self.data, second)
        if old < 0:
            old = new
        if 0 <= old == new:
            self.p_value, self.p_known = old, True

    # --- hunks and binary patches (parse_single_patch, parse_fragment, parse_binary) ---

    def _read_body(self, section: _Section, pos: int) -> int:
        """Read the section's hunks or binary patch at `pos`; where the section ends."""
        end = self._read_hunks(section, pos)
        if end == pos:
            end = self._read_binary(section, pos)
        if end == pos and not section.binary and not section.changes_metadata():
            raise PatchError(f"patch with only garbage at line {self._line_number(pos)}")
        return end

    def _read_hunks(self, section: _Section, pos: int) -> int:
        data = self.data
        old_total = new_total = hunks = 0
        while len(data) - pos > 4 and data.startswith(b"@@ -", pos):
            pos, old_lines, new_lines = self._read_hunk(section, pos)
            old_total, new_total, hunks = old_total + old_lines, new_total + new_lines, hunks + 1
        # a traditional patch may create or delete only with one hunk that says so
        if section.is_new < 0 and (old_total or hunks > 1):
            section.is_new = 0
        if section.is_delete < 0 and (new_total or hunks > 1):
            section.is_delete = 0
        if section.is_new > 0 and old_total:
            raise PatchError(f"new file {_show(section.name())} depends on old contents")
        if section.is_delete > 0 and new_total:
            raise PatchError(f"deleted file {_show(section.name())} still has contents")
        return pos

    def _read_hunk(self, section: _Section, pos: int) -> tuple[int, int, int]:
        """Read the hunk at `pos`: exactly the lines its header counts, then a
        "\\ No newline at end of file" line if one follows. Where it ends, and its counts."""
        data = self.data
        end = _line_end(data, pos)
        ranges = _hunk_ranges(data[pos:end])
        if ranges is None:
            raise self._corrupt(pos)
        old_number, old_count, new_number, new_count = ranges
        old_left, new_left = old_count, new_count
        changes = len(section.added) + len(section.removed)
        while end < len(data) and (old_left or new_left):
            start, end = end, _line_end(data, end)
            line = data[start:end]
            if not line.endswith(b"\n"):
                raise self._corrupt(start)
            mark = line[:1]
            if mark in (b" ", b"\n"):  # context; an empty line is one too
                old_left, new_left = old_left - 1, new_left - 1
                old_number, new_number = old_number + 1, new_number + 1
            elif mark == b"-":
                section.removed.append((old_number, _text(line)))
                old_left, old_number = old_left - 1, old_number + 1
            elif mark == b"+":
                section.added.append((new_number, _text(line)))
                new_left, new_number = new_left - 1, new_number + 1
            elif not (line.startswith(b"\\ ") and len(line) >= 12):
                raise self._corrupt(start)
        if old_left or new_left or len(section.added) + len(section.removed) == changes:
            raise self._corrupt(end)
        if len(data) - end > 12 and data.startswith(b"\\ ", end):
            end = _line_end(data, end)
        return end, old_count, new_count

    def _corrupt(self, pos: int) -> PatchError:
        return PatchError(f"corrupt patch at line {self._line_number(pos)}")

    def _read_binary(self, section: _Section, pos: int) -> int:
        """Read a `GIT binary patch` (a forward block and maybe a reverse one) or a
        `Binary files ... differ` line at `pos`; where it ends (`pos` if there is none)."""
        data = self.data
        end = _line_end(data, pos)
        line = data[pos:end]
        if line == b"GIT binary patch\n":
            forward = self._binary_block(end)
            if forward is None:
                raise PatchError(f"unrecognized binary patch at line {self._line_number(end)}")
            reverse = self._binary_block(forward)
            section.binary = True
            return forward if reverse is None else reverse
        if line.endswith(b" differ\n") and line.startswith((b"Binary files ", b"Files ")):
            section.binary = True
            return end
        return pos

    def _binary_block(self, pos: int) -> int | None:
        """Read a `literal <size>` or `delta <size>` block of base-85 lines up to its blank
        line (parse_binary_hunk); where it ends, or None if none starts at `pos`."""
        data = self.data
        method = next((m for m in (b"delta ", b"literal ") if data.startswith(m, pos)), None)
        if method is None:
            return None
        size = _strtoul(data, pos + len(method))
        deflated = bytearray()
        start = _line_end(data, pos)
        # the block ends at a one-byte line, which is a blank one but at the very end
        while (end := _line_end(data, start)) - start != 1:
            deflated += self._base85_line(start, end)
            start = end
        if not _inflates_to(bytes(deflated), size):
            raise PatchError(f"corrupt binary patch at line {self._line_number(start)}")
        return end

    def _base85_line(self, start: int, end: int) -> bytes:
        """A line of a binary block: a length letter, then base-85 groups of 5 characters."""
        line = self.data[start:end]
        groups, rest = divmod(len(line) - 2, 5)
        size = _BASE85_SIZES.get(line[:1], 0)
        if len(line) >= 7 and not rest and groups * 4 - 4 < size <= groups * 4:
            with contextlib.suppress(ValueError):  # not base 85
                return base64.b85decode(line[1 : 1 + groups * 5])[:size]
        number = self._line_number(start)
        raise PatchError(f"corrupt binary patch at line {number}: {_show(line)}")


def _check_unambiguous(section: _Section) -> None:
    """Refuse what git reads one way or another depending on the tree it is applied to
    (stricter than git, which decides while applying)."""
    name = _show(section.name())
    if section.is_new < 0 or section.is_delete < 0:
        raise PatchError(f"patch of {name} does not say whether it creates or deletes the file")
    if section.is_new and section.old_name is not None:
        raise PatchError(f"patch creating {name} also names an old file")
    if section.is_delete and section.new_name is not None:
        raise PatchError(f"patch deleting {_show(section.old_name or b'')} also names a new file")


_BASE85_SIZES = {
    bytes([letter]): size
    for size, letter in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 1)
}


def _inflates_to(deflated: bytes, size: int) -> bool:
    """Whether zlib data inflates to exactly `size` bytes, as git insists."""
    inflater = zlib.decompressobj()
    try:
        inflated = inflater.decompress(deflated, min(size + 1, sys.maxsize))
    except zlib.error:
        return False
    return inflater.eof and len(inflated) == size


OCTAL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)([0-7]+)")
DECIMAL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)([0-9]*)")


def _strtoul(data: bytes, pos: int) -> int:
    """The number C's strtoul(..., 10) reads at `pos`: 0 if none; negative ones wrap."""
    match = DECIMAL.match(data, pos)
    number = min(int(match[2] or b"0"), 2**64 - 1)
    return (-number if match[1] == b"-" else number) % 2**64


RANGE = re.compile(rb"([0-9]+)(?:,([0-9]+))?")


def _hunk_ranges(line: bytes) -> tuple[int, int, int, int] | None:
    """(old start, old count, new start, new count) of a `@@ -a,b +c,d @@` line, counts 1
    when left out (parse_fragment_header); None if the line is not one."""
    if not line.endswith(b"\n"):
        return None
    old = _range(line, 4, b" +")
    new = old and _range(line, old[2], b" @@")
    if not new:
        return None
    return old[0], old[1], new[0], new[1]


def _range(line: bytes, pos: int, then: bytes) -> tuple[int, int, int] | None:
    match = RANGE.match(line, pos)
    if not match or not line.startswith(then, match.end()):
        return None
    count = 1 if match[2] is None else int(match[2])
    return int(match[1]), count, match.end() + len(then)


# --- names, as git finds them -----------------------------------------------------------------

TERM_SPACE, TERM_TAB = 1, 2  # which of space and tab end an unquoted name

ESCAPES = {ord(k): ord(v) for k, v in zip('abfnrtv\\"', '\a\b\f\n\r\t\v\\"', strict=True)}
PLAIN = re.compile(rb'[^"\\]*')
OCTAL_ESCAPE = re.compile(rb"[0-3][0-7][0-7]")


def _unquote(data: bytes, pos: int) -> tuple[bytes, int] | None:
    """A C-style quoted name at `pos` (unquote_c_style): the name and the position after
    its closing quote, or None. Like git's, it may run past the end of the line."""
    if not data.startswith(b'"', pos):
        return None
    name, pos = bytearray(), pos + 1
    while True:
        plain = PLAIN.match(data, pos)
        name += plain[0]
        pos = plain.end()
        if pos >= len(data):
            return None
        if data[pos] == ord('"'):
            return bytes(name), pos + 1
        escaped = data[pos + 1] if pos + 1 < len(data) else None
        if escaped in ESCAPES:
            name.append(ESCAPES[escaped])
            pos += 2
        elif OCTAL_ESCAPE.match(data, pos + 1):
            name.append(int(data[pos + 1 : pos + 4], 8))
            pos += 4
        else:
            return None


def _squash_slashes(name: bytes | None) -> bytes | None:
    return None if name is None else re.sub(rb"/+", b"/", name)


def _find_name(
    data: bytes, pos: int, default: bytes | None, p_value: int, terminate: int
) -> bytes | None:
    """The name at `pos`, quoted or not, less `p_value` leading folders (find_name)."""
    if data.startswith(b'"', pos):
        name = _find_name_quoted(data, pos, p_value)
        if name is not None:
            return name
    return _find_name_plain(data, pos, default, p_value, None, terminate)


def _find_name_quoted(data: bytes, pos: int, p_value: int) -> bytes | None:
    unquoted = _unquote(data, pos)
    if unquoted is None:
        return None
    name, cut = unquoted[0], 0
    for _ in range(p_value):
        slash = name.find(b"/", cut)
        if slash < 0:
            return None
        cut = slash + 1
    return _squash_slashes(name[cut:])


def _find_name_plain(
    data: bytes, pos: int, default: bytes | None, p_value: int, end: int | None, terminate: int
) -> bytes | None:
    """An unquoted name: from after its `p_value`-th slash to `end`, or (with no `end`) to
    the whitespace that ends it (find_name_common). `default` when there is none, or when
    the name is `default` with something added."""
    start = pos if p_value == 0 else None
    while pos != end and pos < len(data):
        char = data[pos]
        if end is None and char in SPACE and (char == ord("\n") or _ends_name(char, terminate)):
            break
        pos += 1
        if char == ord("/"):
            p_value -= 1
            if p_value == 0:
                start = pos
    if start is None or start == pos:
        return _squash_slashes(default)
    name = data[start:pos]
    if default is not None and len(default) < len(name) and name.startswith(default):
        return _squash_slashes(default)
    return _squash_slashes(name)


def _ends_name(char: int, terminate: int) -> bool:
    if char == ord(" "):
        return bool(terminate & TERM_SPACE)
    if char == ord("\t"):
        return bool(terminate & TERM_TAB)
    return True


def _find_name_traditional(
    data: bytes, pos: int, default: bytes | None, p_value: int
) -> bytes | None:
    """The name on a `---` or `+++` line of a traditional patch, less any timestamp after it."""
    if data.startswith(b'"', pos):
        name = _find_name_quoted(data, pos, p_value)
        if name is not None:
            return name
    eol = _line_stop(data, pos)
    stamp = _timestamp_length(data[pos:eol])
    if not stamp:
        return _find_name_plain(data, pos, default, p_value, None, TERM_TAB)
    return _find_name_plain(data, pos, default, p_value, eol - stamp, 0)


def _p_guess(data: bytes, pos: int) -> int:
    """0 if the name at `pos` has no folder (so no a/ or b/ to strip), else -1: no guess."""
    if _is_dev_null(data, pos):
        return -1
    name = _find_name_traditional(data, pos, None, 0)
    return -1 if name is None or b"/" in name else 0


def _is_dev_null(data: bytes, pos: int) -> bool:
    after = pos + len(b"/dev/null")
    return data.startswith(b"/dev/null", pos) and after < len(data) and data[after] in SPACE


def _skip_tree_prefix(p_value: int, name: bytes) -> int | None:
    """Where `name` starts after `p_value` leading folders; None if it has fewer, or is
    absolute (skip_tree_prefix)."""
    if p_value == 0:
        return None if name.startswith(b"/") else 0
    left = p_value
    for pos, char in enumerate(name):
        if char == ord("/"):
            left -= 1
            if left <= 0:
                return None if pos == 0 else pos + 1
    return None


def _git_header_name(p_value: int, data: bytes, start: int, end: int) -> bytes | None:
    """The name on the `diff --git` line at `start` (ending with its newline at `end`) when
    both sides name the same file (git_header_name); otherwise None, and the other header
    lines must name the file."""
    first = start + len(b"diff --git ")
    if data.startswith(b'"', first):
        return _quoted_header_name(p_value, data, first, end)
    return _plain_header_name(p_value, data, first, end)


def _quoted_header_name(p_value: int, data: bytes, pos: int, end: int) -> bytes | None:
    unquoted = _unquote(data, pos)
    cut = unquoted and _skip_tree_prefix(p_value, unquoted[0])
    if cut is None:
        return None
    name, second = unquoted[0][cut:], unquoted[1]
    while second < end and data[second] in SPACE:
        second += 1
    if second >= end:
        return None
    if data[second] == ord('"'):
        other = _unquote(data, second)
        cut = other and _skip_tree_prefix(p_value, other[0])
        return name if cut is not None and other[0][cut:] == name else None
    cut = _skip_tree_prefix(p_value, data[second:end])
    # git compares with the line's newline included, so this matches only a name that
    # ends with an escaped newline
    return name if cut is not None and data[second + cut : end] == name else None


def _plain_header_name(p_value: int, data: bytes, pos: int, end: int) -> bytes | None:
    cut = _skip_tree_prefix(p_value, data[pos:end])
    if cut is None:
        return None
    pos += cut
    quote = data.find(b'"', pos, end)
    if quote >= 0:  # an unquoted first name and a quoted second one
        other = _unquote(data, quote)
        cut = other and _skip_tree_prefix(p_value, other[0])
        if cut is None:
            return None
        name = other[0][cut:]
        size = len(name)
        if size < quote - pos and data[pos : pos + size] == name and data[pos + size] in SPACE:
            return name
        return None
    # both unquoted: the name is what shows twice, split at a space or tab
    line = data[pos : end - 1]
    for size, char in enumerate(line):
        if char not in b" \t":
            continue
        rest = pos + size + 1
        cut = _skip_tree_prefix(p_value, data[rest : end - 1])
        if cut is None:
            continue
        second = rest + cut
        if (
            data[second + size : second + size + 1] == b"\n"
            and data[second : second + size] == line[:size]
        ):
            return line[:size]
    return None


# --- timestamps after names in traditional patches --------------------------------------------

ZONE = re.compile(rb" [+-][0-9]{4}\Z")
ZONE_WITH_COLON = re.compile(rb" [+-][0-9][0-9]:[0-9][0-9]\Z")
TIME = re.compile(rb" [0-9][0-9]:[0-9][0-9]:[0-9][0-9]\Z")
FRACTIONAL_TIME = re.compile(rb" [0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]+\Z")
DATE = re.compile(rb"(?:[0-9][0-9])?[0-9][0-9]-[0-9][0-9]-[0-9][0-9]\Z")
EPOCH_TIME = re.compile(
    rb"([0-2][0-9]):([0-5][0-9]):00(?:\.0+)? ([-+])([0-2][0-9]):?([0-5][0-9])\n"
)


def _tail_length(pattern: re.Pattern[bytes], text: bytes) -> int:
    match = pattern.search(text)
    return len(match[0]) if match else 0


def _timestamp_length(line: bytes) -> int:
    """How much of the end of a name line is a timestamp, with the whitespace before it
    (diff_timestamp_len): `2010-07-05 19:41:17` or `2010-07-05 19:41:17.620000023 -0500`."""
    if not line[-1:].isdigit():
        return 0
    end = len(line)
    end -= _tail_length(ZONE, line[:end]) or _tail_length(ZONE_WITH_COLON, line[:end])
    end -= _tail_length(TIME, line[:end]) or _tail_length(FRACTIONAL_TIME, line[:end])
    date = _tail_length(DATE, line[:end])
    if not date or date == end:
        return 0
    end -= date
    if line[end - 1] == ord("\t"):
        return len(line) - end + 1
    if line[end - 1] != ord(" "):
        return 0
    return len(line) - len(line[:end].rstrip(b" "))


def _has_epoch_timestamp(data: bytes, pos: int) -> bool:
    """Whether the name line at `pos` ends in a timestamp at the epoch, which GNU diff
    writes for a side that does not exist (has_epoch_timestamp)."""
    eol = data.find(b"\n", pos)
    tab = data.rfind(b"\t", pos, eol)
    if tab < 0:
        return False
    if data.startswith(b"1969-12-31 ", tab + 1):
        epoch_minutes = 24 * 60  # west of Greenwich the epoch was the day before
    elif data.startswith(b"1970-01-01 ", tab + 1):
        epoch_minutes = 0
    else:
        return False
    time = EPOCH_TIME.match(data, tab + 1 + len(b"1970-01-01 "))
    if not time:
        return False
    zone = int(time[4]) * 60 + int(time[5])
    zone = -zone if time[3] == b"-" else zone
    return int(time[1]) * 60 + int(time[2]) - zone == epoch_minutes
