import pytest

from archive.blobs import BlobStore
from archive.errors import InvalidArgument, MissingObject


def test_round_trip_and_dedup(tmp_path):
    store = BlobStore(tmp_path)
    ref = store.put(b"log line\n" * 1000)
    assert ref.startswith("sha256:") and len(ref) == 71
    assert store.put(b"log line\n" * 1000) == ref
    assert store.get(ref) == b"log line\n" * 1000
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 1
    assert files[0].stat().st_size < 1000  # stored compressed


def test_missing_and_corrupt_blobs_are_reported(tmp_path):
    store = BlobStore(tmp_path)
    ref = store.put(b"hello")
    other = "sha256:" + "0" * 64
    with pytest.raises(MissingObject, match="missing"):
        store.get(other)
    path = next(p for p in tmp_path.rglob("*") if p.is_file())
    path.write_bytes(__import__("zlib").compress(b"tampered"))
    with pytest.raises(MissingObject, match="corrupt"):
        store.get(ref)
    with pytest.raises(InvalidArgument):
        store.get("md5:abc")


def test_no_temporary_files_left(tmp_path):
    store = BlobStore(tmp_path)
    for i in range(20):
        store.put(str(i).encode())
    assert not [p for p in tmp_path.rglob(".tmp-*")]
