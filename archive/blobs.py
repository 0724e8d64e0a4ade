"""Content-addressed storage for logs, trajectories and patches.

A blob is named by the SHA-256 of its content (`sha256:<hex>`) and stored zlib-compressed
under `<archive>/blobs/<hex[:2]>/<hex[2:]>`. Writes go to a temporary file that is synced
and renamed, so a crash never leaves a half-written blob under a real name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zlib
from pathlib import Path

from archive.errors import InvalidArgument, MissingObject

PREFIX = "sha256:"


class BlobStore:
    def __init__(self, root: Path, *, durable: bool = True):
        self.root = Path(root)
        self._durable = durable

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self._path(digest)
        if target.exists():
            return PREFIX + digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            os.write(fd, zlib.compress(data))
            if self._durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, target)
        return PREFIX + digest

    def get(self, ref: str) -> bytes:
        digest = self._digest(ref)
        try:
            data = zlib.decompress(self._path(digest).read_bytes())
        except FileNotFoundError:
            raise MissingObject(
                f"blob {ref} is missing from {self.root}; restore the archive's blobs/ folder"
            ) from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise MissingObject(f"blob {ref} in {self.root} is corrupt (content hash differs)")
        return data

    def exists(self, ref: str) -> bool:
        return self._path(self._digest(ref)).exists()

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:]

    @staticmethod
    def _digest(ref: str) -> str:
        digest = ref.removeprefix(PREFIX)
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise InvalidArgument(f"{ref!r} is not a blob reference (expected sha256:<64 hex>)")
        return digest
