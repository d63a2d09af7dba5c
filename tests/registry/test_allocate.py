"""Finding the next free version number after others took many: one listing on S3, galloping elsewhere."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from registry import Registry, VersionInfo, keys, versions
from registry.store.base import ObjectStore

ARTIFACT = b"the same bytes for every version"


def _count_manifest_calls(store: ObjectStore) -> Counter[str]:
    """Count the calls of ``store`` on manifest keys (existence checks, listings, writes)."""
    counts: Counter[str] = Counter()
    for method in ("exists", "keys_after", "put"):
        real = getattr(store, method)

        def counted(key: str, *args: Any, _real: Any = real, _method: str = method, **kwargs: Any) -> Any:
            if "/versions/" in key:
                counts[_method] += 1
            return _real(key, *args, **kwargs)

        setattr(store, method, counted)
    return counts


@pytest.mark.parametrize("page", [versions.LIST_PAGE, 7])
def test_a_writer_far_behind_finds_the_first_free_number(
    location: str, monkeypatch: pytest.MonkeyPatch, page: int
) -> None:
    monkeypatch.setattr(versions, "LIST_PAGE", page)
    lagging, others = Registry.open(location), Registry.open(location)  # two stores: two memories of "taken"
    assert lagging.register("m", ARTIFACT, VersionInfo(), fmt="bytes").version == 1
    for _ in range(40):
        others.register("m", ARTIFACT, VersionInfo(), fmt="bytes")
    others.flush()
    calls = _count_manifest_calls(lagging.store)
    assert lagging.register("m", ARTIFACT, VersionInfo(), fmt="bytes").version == 42  # no gap, no duplicate
    assert calls["put"] == 2  # v2 lost, then v42
    if location.startswith("s3://"):
        # The listing from v2 on: one page, however far the others got (or one per page of them).
        assert calls["keys_after"] == -(-41 // page) and calls["exists"] == 0
    else:
        # A directory gallops and bisects: a few existence checks, not one per version.
        assert calls["keys_after"] == 1 and 0 < calls["exists"] <= 14
    lagging.flush()
    assert [mv.version for mv in lagging.versions("m")][:3] == [42, 41, 40]
    assert sorted(e.version for e in lagging.history("m") if e.type == "registered") == list(range(1, 43))


def test_a_listing_skips_what_is_not_a_manifest_and_stops_at_a_hole(location: str) -> None:
    reg = Registry.open(location)
    for _ in range(3):
        reg.register("m", ARTIFACT, VersionInfo(), fmt="bytes")
    reg.flush()
    reg.store.put(keys.versions_prefix("m") + "notes.txt", b"not a manifest")
    reg.store.put(keys.manifest_key("m", 5), b"{}")  # a hole at v4 (only damage makes one)
    for start in (1, 2, 4):
        free = versions.first_free(reg.store, "m", start)
        assert free >= start and not versions.exists(reg.store, "m", free)
        if location.startswith("s3://"):
            assert free == 4  # a listing sees the first hole; galloping assumes none and may land past it
    assert versions.first_free(reg.store, "other", 1) == 1
