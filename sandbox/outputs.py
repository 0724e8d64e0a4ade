"""Taking files out of a sandbox: what the agent made is data, never instructions to the host.

Only regular files and folders come out, under safe relative names, within a byte and an
entry limit, written into a fresh folder through folder descriptors with `O_NOFOLLOW` and
`O_EXCL`, so no link the agent planted is ever followed and nothing outside the folder is
touched. Links, FIFOs, devices, hard links, names that climb out, duplicates and whatever is
over a limit are refused one by one and reported, not raised: what an agent's output breaks is
held against the agent, never taken for a failure of the harness. `tarfile` only reads the
stream's headers here; its extraction filters are not relied on.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from sandbox.base import SandboxError, Taken

_CHUNK = 1 << 16
_NAME_MAX = 255
_PATH_MAX = 4096
_DEPTH_MAX = 32
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Folder:
    """A fresh folder written only through descriptors of folders this writer made."""

    def __init__(self, target: Path, max_bytes: int, max_entries: int):
        target = Path(target)
        with contextlib.suppress(FileExistsError):
            target.mkdir(parents=True)
        try:
            self._root = os.open(target, _DIR)
        except OSError as error:  # a link, or not a folder
            raise SandboxError(f"cannot copy out into {target}: {error.strerror}") from error
        if os.listdir(self._root):
            os.close(self._root)
            raise SandboxError(f"cannot copy out into {target}: it is not empty")
        self._dirs: dict[tuple[str, ...], int] = {(): self._root}
        self.max_bytes, self.bytes_left, self.entries_left = max_bytes, max_bytes, max_entries
        self.taken = Taken()

    def close(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()

    def refuse(self, name: str, why: str) -> None:
        self.taken.refused.append(f"{name}: {why}")

    def admit(self, name: str) -> tuple[str, ...] | None:
        """The name's parts when it is a safe relative path and an entry is left, else None
        (refused)."""
        parts = tuple(part for part in name.split("/") if part not in ("", "."))
        if self.entries_left <= 0:
            self.refuse(name, "more entries than the limit")
            return None
        if (
            not parts
            or name.startswith("/")
            or len(name.encode(errors="surrogateescape")) > _PATH_MAX
            or len(parts) > _DEPTH_MAX
            or any(p == ".." or "\0" in p or len(p.encode(errors="surrogateescape")) > _NAME_MAX
                   for p in parts)
        ):  # fmt: skip
            self.refuse(name, "not a safe relative name")
            return None
        self.entries_left -= 1
        return parts

    def folder(self, parts: tuple[str, ...]) -> int | None:
        """The descriptor of the folder `parts`, made (with its parents) if need be."""
        if parts in self._dirs:
            return self._dirs[parts]
        parent = self.folder(parts[:-1])
        if parent is None:
            return None
        try:
            with contextlib.suppress(FileExistsError):  # made by us: a file of that name fails
                os.mkdir(parts[-1], 0o755, dir_fd=parent)
            self._dirs[parts] = os.open(parts[-1], _DIR, dir_fd=parent)
        except OSError:
            return None
        return self._dirs[parts]

    def write(
        self, name: str, parts: tuple[str, ...], size: int, chunks: Iterable[bytes], mode: int
    ) -> None:
        """Write a regular file of `size` bytes, unless it is over what the limit leaves."""
        if size > self.bytes_left:
            self.refuse(name, f"over the limit of {self.max_bytes:,} bytes")
            return
        self.bytes_left -= size
        parent = self.folder(parts[:-1])
        if parent is None:
            self.refuse(name, "its folder could not be made")
            return
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(parts[-1], flags, 0o755 if mode & 0o100 else 0o644, dir_fd=parent)
        except FileExistsError:
            self.refuse(name, "it appears twice")
            return
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        self.taken.files.append("/".join(parts))


def take_tar(stream: BinaryIO, target: Path, *, max_bytes: int, max_entries: int,
             strip: int = 1) -> Taken:  # fmt: skip
    """Write a tar stream's regular files and folders into `target` (new or empty), the first
    `strip` name parts dropped (Docker's archive of `/work/out` names everything `out/...`)."""
    folder = _Folder(target, max_bytes, max_entries)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = "/".join(member.name.split("/")[strip:])
                if not name.strip("/."):  # the folder itself
                    if not member.isdir():
                        folder.refuse(member.name, f"not a folder ({_kind(member)})")
                    continue
                parts = folder.admit(name)
                if parts is None:
                    if folder.entries_left <= 0:
                        break
                elif member.isdir():
                    if folder.folder(parts) is None:
                        folder.refuse(name, "a file of that name is in the way")
                elif not member.isreg():
                    folder.refuse(name, f"not a regular file ({_kind(member)})")
                else:
                    data = tar.extractfile(member)
                    chunks = iter(lambda d=data: d.read(_CHUNK), b"")
                    folder.write(name, parts, member.size, chunks, member.mode)
    except tarfile.TarError as error:
        folder.refuse("(archive)", f"unreadable past this point: {error}")
    finally:
        folder.close()
    return folder.taken


def take_tree(base: Path, source: str, target: Path, *, max_bytes: int, max_entries: int) -> Taken:
    """Copy the folder `source` (relative to the trusted host folder `base`) that the agent
    wrote into `target` (new or empty): every folder on the way is opened and every file read
    with `O_NOFOLLOW` and checked with `fstat` once open, so a link or FIFO put in the way is
    refused, never followed."""
    folder = _Folder(target, max_bytes, max_entries)
    try:
        root = open_folder(base, source)
    except OSError as error:
        folder.close()
        why = "a link" if error.errno == errno.ELOOP else (error.strerror or "").lower()
        return Taken(refused=[f"{source or '.'}: not a folder ({why})"])
    try:
        for name, parts, fd in _walk(root, (), folder):
            with os.fdopen(fd, "rb") as data:
                info = os.fstat(data.fileno())
                if info.st_nlink > 1:
                    folder.refuse(name, "a hard link")
                else:
                    size = info.st_size
                    folder.write(name, parts, size, _bounded(data, size), info.st_mode)
    finally:
        os.close(root)
        folder.close()
    return folder.taken


def open_folder(base: Path, relative: str) -> int:
    """A descriptor of the folder `relative` under `base`, opened one part at a time without
    following links (OSError when a part is a link, a file or missing)."""
    fd = os.open(base, _DIR)
    try:
        for part in (p for p in relative.split("/") if p not in ("", ".")):
            if part == "..":
                raise OSError(errno.EPERM, "climbs out", relative)
            fd, parent = os.open(part, _DIR, dir_fd=fd), fd
            os.close(parent)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _walk(
    directory: int, prefix: tuple[str, ...], folder: _Folder
) -> Iterator[tuple[str, tuple[str, ...], int]]:
    """(name, parts, open descriptor) of each regular file under `directory`, refusing the
    rest into `folder`."""
    with os.scandir(directory) as entries:
        names = sorted(entry.name for entry in entries)
    for entry_name in names:
        name = "/".join((*prefix, entry_name))
        parts = folder.admit(name)
        if parts is None:
            if folder.entries_left <= 0:
                return
            continue
        try:
            fd = os.open(entry_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=directory)  # fmt: skip
        except OSError as error:
            why = "a link" if error.errno == errno.ELOOP else error.strerror
            folder.refuse(name, f"not a regular file or folder ({why})")
            continue
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            try:
                if folder.folder(parts) is None:
                    folder.refuse(name, "a file of that name is in the way")
                else:
                    yield from _walk(fd, parts, folder)
            finally:
                os.close(fd)
        elif stat.S_ISREG(mode):
            yield name, parts, fd
        else:
            os.close(fd)
            folder.refuse(name, f"not a regular file ({_mode_kind(mode)})")


def read_regular(path: Path) -> bytes | None:
    """A regular file's bytes, never through a link and never waiting on a FIFO; None when
    `path` is no regular file (a folder an agent wrote may hold anything)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read() if stat.S_ISREG(os.fstat(fd).st_mode) else None


def _bounded(data: BinaryIO, size: int) -> Iterator[bytes]:
    """At most `size` bytes: a file still growing is cut where its size was read."""
    while size > 0 and (chunk := data.read(min(_CHUNK, size))):
        size -= len(chunk)
        yield chunk


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"a link to {member.linkname}"
    if member.islnk():
        return f"a hard link to {member.linkname}"
    if member.isfifo():
        return "a FIFO"
    if member.isdev():
        return "a device"
    return f"tar type {member.type!r}"


def _mode_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "an unknown kind"
