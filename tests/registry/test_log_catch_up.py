"""A writer far behind the log catches up from the snapshot object when it proves itself, else event by event.

Two registries on one location stand for two processes: each remembers the log as it last saw it.
"""

from __future__ import annotations

from typing import Any

import pytest

from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.core import background, keys
from prefect_model_registry.registry.core.log import JUMP_AFTER, ModelLog
from prefect_model_registry.registry.models import ModelState

BEHIND = 30


def _count_event_reads(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    real = reg.store.get

    def get(key: str) -> Any:
        if "/events/" in key:
            reads.append(key)
        return real(key)

    monkeypatch.setattr(reg.store, "get", get)
    return reads


@pytest.fixture
def behind(location: str) -> tuple[Registry, Registry]:
    """``slow`` knew the log at event 1; ``busy`` then appended :data:`BEHIND` events and refreshed the snapshot."""
    slow, busy = Registry.open(location), Registry.open(location)
    slow.register("m", b"one", fmt="bytes", operation_key="r1")
    for i in range(BEHIND):
        busy.set_alias("m", f"a{i}", 1)
    ModelLog(busy.store, "m").refresh_snapshot()
    background.flush()
    return slow, busy


def test_far_behind_it_goes_on_from_the_snapshot(behind: tuple[Registry, Registry], monkeypatch) -> None:
    slow, busy = behind
    reads = _count_event_reads(slow, monkeypatch)
    event = slow.set_alias("m", "late", 1)
    assert event.seq == BEHIND + 2  # after everything the other process appended
    # JUMP_AFTER events one by one, the snapshot's last event to check it, and the probe past the end: not 30.
    assert len(reads) <= JUMP_AFTER + 4 and len(reads) < BEHIND // 2, reads
    state = slow.state("m")
    assert state == busy.state("m") and set(state.aliases) == {f"a{i}" for i in range(BEHIND)} | {"late"}


def test_a_snapshot_that_does_not_match_the_log_is_not_jumped_to(
    behind: tuple[Registry, Registry], monkeypatch: pytest.MonkeyPatch
) -> None:
    slow, _ = behind
    snap = ModelState.model_validate_json(slow.store.get(keys.state_key("m")).data)
    aliases = {**snap.aliases, "forged": 1}
    forged = snap.model_copy(update={"aliases": aliases, "head_hash": "f" * 64})  # a head no event hashes to
    slow.store.put(keys.state_key("m"), forged.model_dump_json().encode())
    reads = _count_event_reads(slow, monkeypatch)
    slow.set_alias("m", "late", 1)
    assert "forged" not in slow.state("m").aliases
    assert len(reads) >= BEHIND  # replayed event by event


def test_a_retry_finds_its_keyed_event_however_far_behind(behind: tuple[Registry, Registry]) -> None:
    slow, busy = behind
    first = slow.set_alias("m", "late", 1, operation_key="r2")
    for i in range(BEHIND):
        busy.set_alias("m", f"b{i}", 1)
    ModelLog(busy.store, "m").refresh_snapshot()
    background.flush()
    again = slow.set_alias("m", "late", 1, operation_key="r2")  # a retry, with the log moved far on meanwhile
    assert again is not None and (again.seq, again.op_key) == (first.seq, "r2")
    assert [e.op_key for e in slow.history("m")].count("r2") == 1
