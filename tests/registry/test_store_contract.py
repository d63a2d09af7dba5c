"""The object-store contract, run against a local directory and two S3 servers (SeaweedFS and moto).

moto is a second S3 implementation: the contract passing on both checks the client (the direct requests and
boto3), not one server's habits. Racing writers are tested on SeaweedFS only (``test_concurrency.py``): moto
checks a condition and writes without a lock between the two.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from prefect_model_registry.registry.errors import IntegrityError, InvalidName, ObjectNotFound, PreconditionFailed
from prefect_model_registry.registry.store import ObjectStore, open_store


@pytest.fixture
def store(contract_location: str) -> ObjectStore:
    """An empty store on each implementation, checked reachable."""
    s = open_store(contract_location)
    s.check()
    return s


def test_put_get_roundtrip_and_etag_changes(store) -> None:
    e1 = store.put("a/b.json", b"one")
    got = store.get("a/b.json")
    assert got.data == b"one" and got.etag == e1
    e2 = store.put("a/b.json", b"two")
    assert e2 != e1 and store.get("a/b.json").data == b"two"


def test_create_only_refuses_existing_key(store) -> None:
    store.put("k", b"first", create_only=True)
    with pytest.raises(PreconditionFailed) as lost:
        store.put("k", b"second", create_only=True)
    assert lost.value.taken  # the key certainly exists: allocation may move past it without looking
    assert store.get("k").data == b"first"


def test_compare_and_swap(store) -> None:
    etag = store.put("cas", b"v1")
    new = store.put("cas", b"v2", if_match=etag)
    with pytest.raises(PreconditionFailed) as lost:
        store.put("cas", b"v3", if_match=etag)  # stale etag loses
    assert not lost.value.taken
    assert store.get("cas").data == b"v2"
    store.put("cas", b"v4", if_match=new)
    assert store.get("cas").data == b"v4"


def test_compare_and_swap_on_missing_key_fails(store) -> None:
    with pytest.raises(PreconditionFailed):
        store.put("missing", b"x", if_match='"0123"')
    assert not store.exists("missing")


def test_get_missing_raises_typed_lookup_error(store) -> None:
    with pytest.raises(ObjectNotFound) as info:
        store.get("nope/nothing")
    assert isinstance(info.value, FileNotFoundError)


def test_list_is_sorted_and_prefix_bounded(store) -> None:
    for key in ["m/b/2", "m/a/1", "m/b/1", "n/x", "mm/y"]:
        store.put(key, b".")
    assert list(store.list("m/")) == ["m/a/1", "m/b/1", "m/b/2"]
    assert store.list_children("m/") == ["a", "b"]
    assert list(store.list("zzz/")) == []


def test_exists_and_delete(store) -> None:
    store.put("d", b"1")
    assert store.exists("d")
    store.delete("d")
    assert not store.exists("d")
    store.delete("d")  # deleting a missing key is fine


@pytest.mark.parametrize("key", ["", "../escape", "a//b", "/abs", "a/./b", "sp ace", "ctl\x07"])
def test_unsafe_keys_are_refused(store, key: str) -> None:
    with pytest.raises(InvalidName):
        store.put(key, b"x")


# -- large objects (issue 30): streamed in bounded chunks, multipart above the threshold --------------------------
PART = 5 * 1024 * 1024  # S3's smallest part (SeaweedFS and moto enforce it, as AWS does)


@pytest.fixture
def big_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file of two full parts and a tail, with the multipart threshold lowered below it."""
    monkeypatch.setenv("PMR_MULTIPART_THRESHOLD", str(2 * PART))
    monkeypatch.setenv("PMR_MULTIPART_CHUNK", str(PART))
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(2 * PART + 4321))
    return path


def test_a_file_goes_in_and_comes_out_streamed(store: ObjectStore, big_file: Path, tmp_path: Path) -> None:
    digest = hashlib.sha256(big_file.read_bytes()).hexdigest()
    moved: list[int] = []
    store.put_file("blobs/big", big_file, sha256=digest, progress=moved.append)
    assert sum(moved) == big_file.stat().st_size
    assert store.size("blobs/big") == big_file.stat().st_size and store.size("blobs/none") is None
    out = tmp_path / "out.bin"
    out.touch()
    store.get_file("blobs/big", out)
    assert out.read_bytes() == big_file.read_bytes()
    assert b"".join(store.read_chunks("blobs/big")) == big_file.read_bytes()
    with store.open_read("blobs/big") as fh:  # seekable: a zip directory is read from the end
        fh.seek(-10, 2)
        assert fh.read() == big_file.read_bytes()[-10:]
        fh.seek(PART - 3)
        assert fh.read(6) == big_file.read_bytes()[PART - 3 : PART + 3]
    assert store.unfinished_uploads() == []


def test_a_file_that_does_not_match_its_hash_is_not_published(store: ObjectStore, big_file: Path) -> None:
    with pytest.raises(IntegrityError):
        store.put_file("blobs/big", big_file, sha256="0" * 64)
    with pytest.raises(IntegrityError):  # the file changed since it was hashed: asked just before publishing
        store.put_file("blobs/big", big_file, unchanged=lambda: False)
    assert not store.exists("blobs/big") and store.unfinished_uploads() == []


def test_missing_objects_are_typed_for_streamed_reads(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        store.open_read("nothing")
    with pytest.raises(ObjectNotFound):
        b"".join(store.read_chunks("nothing"))
