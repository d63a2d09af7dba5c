"""Changing one byte of a blob, a manifest, an event or the snapshot is caught by load or verify."""

from __future__ import annotations

import pytest

from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.errors import IntegrityError
from prefect_model_registry.registry.maintenance.verify import verify


def _flip(reg: Registry, key: str, at: int | None = None) -> None:
    data = bytearray(reg.store.get(key).data)
    i = len(data) // 2 if at is None else at
    data[i] = data[i] ^ 0x01
    reg.store.put(key, bytes(data))


@pytest.fixture
def populated(reg: Registry) -> Registry:
    for i in range(3):
        reg.register("m", f"model-bytes-{i}".encode() * 50, fmt="bytes")
    reg.promote("m", 2, "staging")
    reg.promote("m", 2, "production")
    reg.set_alias("m", "champion", 2)
    assert verify(reg).ok
    return reg


def _problems(reg: Registry) -> str:
    report = verify(reg)
    assert not report.ok
    return " | ".join(f.problem for f in report.findings)


def test_altered_blob_is_refused_by_load_and_found_by_verify(populated: Registry) -> None:
    mv = populated.get_version("m", 2)
    _flip(populated, mv.artifact.key)
    with pytest.raises(IntegrityError, match="corrupt"):
        populated.load("models:/m@production")
    assert "artifact of v2 is altered" in _problems(populated)


def test_missing_blob_is_refused_and_reported(populated: Registry) -> None:
    populated.store.delete(populated.get_version("m", 1).artifact.key)
    with pytest.raises(IntegrityError, match="missing"):
        populated.load("models:/m/1")
    assert "artifact of v1 is missing" in _problems(populated)


def test_altered_manifest_is_found_by_verify(populated: Registry) -> None:
    key = "models/m/versions/0000000001.json"
    raw = populated.store.get(key).data
    populated.store.put(key, raw.replace(b'"description":""', b'"description":"X"'))
    assert "manifest of v1 differs from the one registered" in _problems(populated)


def test_manifest_pointing_at_another_blob_is_found(populated: Registry) -> None:
    key = "models/m/versions/0000000003.json"
    v1 = populated.get_version("m", 1).artifact.sha256
    v3 = populated.get_version("m", 3).artifact.sha256
    populated.store.put(key, populated.store.get(key).data.replace(v3.encode(), v1.encode()))
    assert "manifest of v3 differs" in _problems(populated)


@pytest.mark.parametrize("seq", [1, 3])
def test_altered_event_breaks_the_chain(populated: Registry, seq: int) -> None:
    key = f"models/m/events/{seq:012d}.json"
    raw = populated.store.get(key).data
    populated.store.put(key, raw.replace(b'"actor":"pytest"', b'"actor":"pytesT"'))
    problems = _problems(populated)
    assert "hash chain of m broken" in problems or "snapshot" in problems
    with pytest.raises(IntegrityError):
        populated.history("m")


def test_one_flipped_byte_in_the_last_event_is_caught(populated: Registry) -> None:
    last = list(populated.store.list("models/m/events/"))[-1]
    _flip(populated, last)
    assert not verify(populated).ok


def test_deleted_event_is_a_gap(populated: Registry) -> None:
    populated.store.delete("models/m/events/000000000002.json")
    assert "event 2 is missing" in _problems(populated)


def test_altered_snapshot_is_found(populated: Registry) -> None:
    key = "models/m/state.json"
    raw = populated.store.get(key).data
    populated.store.put(key, raw.replace(b'"champion":2', b'"champion":1'))
    assert "snapshot differs from the replayed log" in _problems(populated)


def test_dangling_alias_is_found(populated: Registry) -> None:
    key = "models/m/state.json"
    raw = populated.store.get(key).data
    populated.store.delete("models/m/versions/0000000003.json")
    populated.store.put(key, raw)
    problems = _problems(populated)
    assert "not contiguous" in problems or "no registration" in problems or "missing v3" in problems
