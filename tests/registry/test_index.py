"""The listing index (issue 13): full blocks of manifests packed into one object, only a cache of them."""

from __future__ import annotations

import json

import pytest

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.core import index
from prefect_model_registry.registry.maintenance.repair import repair
from prefect_model_registry.registry.maintenance.verify import verify
from tests.conftest import count_gets

SEG = 8  # small blocks, so that a test needs a few dozen versions, not thousands


@pytest.fixture
def listed(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setattr(index, "SEGMENT", SEG)
    for i in range(1, 31):
        reg.register("m", b"v%d" % i, VersionInfo(metrics={"auc": i / 100}, tags={"i": str(i)}), fmt="bytes")
    return reg


def _direct(reg: Registry) -> list[bytes]:
    return [reg.get_version("m", v).to_bytes() for v in range(30, 0, -1)]


def test_listing_writes_segments_then_reads_them(listed: Registry) -> None:
    first = [mv.to_bytes() for mv in listed.versions("m")]
    assert first == _direct(listed)
    segments = sorted(listed.store.list(index.index_prefix("m")))
    assert segments == [index.segment_key("m", f) for f in (1, 9, 17)]  # v25..v30 are not a full block yet
    gets = count_gets(listed)
    again = [mv.to_bytes() for mv in listed.versions("m")]
    assert again == first
    manifests = [k for k in gets if "/versions/" in k]
    assert len(manifests) == 30 - 24  # only the incomplete block is read manifest by manifest (exists() probes)
    assert sum("/index/" in k for k in gets) == 4  # three segments and the (missing) tail
    assert [mv.version for mv in listed.search("m", where=["auc>=0.2"], sort="-auc", limit=3)] == [30, 29, 28]
    assert verify(listed).ok


def test_a_bad_segment_is_ignored_reported_and_rebuilt(listed: Registry) -> None:
    listed.versions("m")
    garbage = index.segment_key("m", 1)
    listed.store.put(garbage, b"{not json")
    assert [mv.to_bytes() for mv in listed.versions("m")] == _direct(listed)  # ignored: manifests read instead
    assert "index_unusable" in verify(listed).kinds()

    key = index.segment_key("m", 9)
    body = json.loads(listed.store.get(key).data)
    body["manifests"][0] = body["manifests"][0].replace('"auc":0.09', '"auc":0.99')  # parses, but altered
    listed.store.put(key, json.dumps(body).encode())
    report = verify(listed)
    assert not report.ok and "index_altered" in report.kinds()
    done = repair(listed, apply=True, grace_s=0)
    assert {a["key"] for a in done} >= {garbage, key}
    assert verify(listed).ok
    assert [mv.to_bytes() for mv in listed.versions("m")] == _direct(listed)  # rebuilt from the manifests
    assert listed.store.exists(key) and verify(listed).ok


def test_a_segment_for_another_block_or_model_is_not_used(listed: Registry) -> None:
    listed.versions("m")
    moved = listed.store.get(index.segment_key("m", 1)).data
    listed.store.put(index.segment_key("m", 9), moved)  # well-formed, but the wrong block
    assert [mv.to_bytes() for mv in listed.versions("m")] == _direct(listed)
    assert "index_unusable" in verify(listed).kinds()


def test_the_tail_holds_the_last_incomplete_block(listed: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index, "TAIL_REFRESH", 2)
    assert [mv.to_bytes() for mv in listed.versions("m")] == _direct(listed)
    assert listed.store.exists(index.tail_key("m"))
    real, gets = listed.store.get, []

    def counting(key: str):  # type: ignore[no-untyped-def]
        gets.append(key)
        return real(key)

    expected = _direct(listed)
    listed.store.get = counting  # type: ignore[method-assign]
    assert [mv.to_bytes() for mv in listed.versions("m")] == expected
    assert not [k for k in gets if "/versions/" in k]  # segments and the tail only
    listed.store.get = real  # type: ignore[method-assign]
    for i in (31, 32):  # v32 completes the block v25..v32: the tail is left behind, then rewritten
        listed.register("m", b"v%d" % i, VersionInfo(metrics={"auc": i / 100}), fmt="bytes")
    every = listed.versions("m")
    assert [mv.version for mv in every] == list(range(32, 0, -1)) and verify(listed).ok
    tail = json.loads(listed.store.get(index.tail_key("m")).data)
    assert tail["first"] == 25 or listed.store.exists(index.segment_key("m", 25))
    body = json.loads(listed.store.get(index.segment_key("m", 25)).data)
    body["manifests"][1] = body["manifests"][1].replace('"auc":0.26', '"auc":0.96')
    listed.store.put(index.segment_key("m", 25), json.dumps(body).encode())
    assert "index_altered" in verify(listed).kinds()
    repair(listed, apply=True, grace_s=0)
    assert (
        verify(listed).ok
        and [mv.to_bytes() for mv in listed.versions("m")][7] == listed.get_version("m", 25).to_bytes()
    )


def test_a_process_parses_an_index_object_once_per_etag(listed: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    listed.versions("m")  # writes the segments
    listed.versions("m")  # reads and parses them
    parsed: list[int] = []
    real = index.parse_segment

    def counting(name: str, first: int, raw: bytes):  # type: ignore[no-untyped-def]
        parsed.append(first)
        return real(name, first, raw)

    monkeypatch.setattr(index, "parse_segment", counting)
    assert [mv.to_bytes() for mv in listed.versions("m")] == _direct(listed)
    assert parsed == []  # every segment still has the ETag it was parsed with
    key = index.segment_key("m", 9)
    body = json.loads(listed.store.get(key).data)
    body["manifests"][0] = body["manifests"][0].replace('"auc":0.09', '"auc":0.77')
    listed.store.put(key, json.dumps(body).encode())
    assert {mv.version: mv.metrics["auc"] for mv in listed.versions("m")}[9] == 0.77  # re-read, not remembered
    assert parsed == [9]
    assert "index_altered" in verify(listed).kinds()
