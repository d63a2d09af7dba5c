"""Finding the next free version number after others took many: one listing on S3, galloping elsewhere."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.core import keys, versions
from prefect_model_registry.registry.store.base import ObjectStore

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
        # The listing from v2 on: one page, however far the others got (or one per page of them); then one
        # look that nobody took v42 meanwhile.
        assert calls["keys_after"] == -(-41 // page) and calls["exists"] == 1
    else:
        # A directory gallops and bisects: a few existence checks, not one per version.
        assert calls["keys_after"] == 1 and 1 < calls["exists"] <= 15
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


class _Clock:
    """Stands in for ``versions.time``: sleeping moves a fake clock, while another writer registers on.

    The other writer takes the next number every 3 ms of fake time until ``stops_at``.
    """

    def __init__(self, store: ObjectStore, name: str, first: int, stops_at: float) -> None:
        self.store, self.name, self.stops_at = store, name, stops_at
        self.now, self.next_at, self.next_number = 0.0, 0.0, first

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        end = self.now + seconds
        while self.next_at <= end and self.next_at < self.stops_at:
            self.store.put(keys.manifest_key(self.name, self.next_number), b"{}")
            self.next_number += 1
            self.next_at += 0.003
        self.now = end


def test_a_loser_keeps_out_of_the_way_until_the_other_writer_pauses(
    location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Registry.open(location).store
    store.put(keys.manifest_key("m", 1), b"{}")
    clock = _Clock(store, "m", first=2, stops_at=0.5)
    monkeypatch.setattr(versions, "time", clock)
    free = versions._await_turn(store, "m", 2, 1, patient_until=60.0)
    # It tried nothing while the other writer took ~166 numbers, and takes the next one once it stopped.
    assert clock.now >= 0.5
    assert free == clock.next_number and free > 150
    assert not versions.exists(store, "m", free) and versions.exists(store, "m", free - 1)


def test_a_loser_past_its_patience_races_for_the_first_free_number(
    location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Registry.open(location).store
    store.put(keys.manifest_key("m", 1), b"{}")
    clock = _Clock(store, "m", first=2, stops_at=1.0)  # the other writer does not pause before 1 s
    monkeypatch.setattr(versions, "time", clock)
    free = versions._await_turn(store, "m", 2, 1, patient_until=0.1)
    assert 0.1 < clock.now < 0.1 + 2 * (versions.CLAIM_BACKOFF_MAX_S + versions.QUIET_S)
    assert free == clock.next_number  # the first free number when it looked: not starved, and no gap
