"""The log index (issue 31): full blocks of the audit log packed into one object, only ever a cache of the log."""

from __future__ import annotations

import json

import pytest

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.core import log_index
from prefect_model_registry.registry.maintenance.repair import repair
from prefect_model_registry.registry.maintenance.verify import verify
from prefect_model_registry.registry.models import sha256
from tests.conftest import count_gets

BLOCK = 8  # small blocks, so a test needs a few dozen events, not thousands


@pytest.fixture
def logged(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setattr(log_index, "BLOCK", BLOCK)
    for i in range(1, 31):  # 30 registered events: blocks 1..8, 9..16, 17..24, then 25..30 one by one
        reg.register("m", b"v%d" % i, VersionInfo(metrics={"auc": i / 100}), fmt="bytes", actor=f"user{i}")
    return reg


def _raw_history(reg: Registry) -> list[bytes]:
    return [reg.store.get(f"models/m/events/{seq:012d}.json").data for seq in range(1, 31)]


def _forge_last_entry(reg: Registry, first: int) -> None:
    """Rewrite a block's last entry (another actor): it still parses and chains to the entry before it."""
    key = log_index.block_key("m", first)
    body = json.loads(reg.store.get(key).data)
    body["events"][-1] = body["events"][-1].replace(f'"user{first + BLOCK - 1}"', '"mallory"')
    reg.store.put(key, json.dumps(body).encode())


def test_a_full_read_packs_blocks_and_the_next_reads_them(logged: Registry) -> None:
    first = logged.history("m")
    assert [e.seq for e in first] == list(range(1, 31))
    assert sorted(logged.store.list(log_index.prefix("m"))) == [log_index.block_key("m", f) for f in (1, 9, 17)]
    gets = count_gets(logged)
    again = logged.history("m")
    assert again == first
    events = [k for k in gets if "/events/" in k]
    # The incomplete block one by one and the probe past the end (which the state's catch-up also makes).
    assert sorted(set(events)) == [f"models/m/events/{seq:012d}.json" for seq in range(25, 32)]
    assert len(events) <= 8
    assert sum("/log-index/" in k for k in gets) == 3
    assert verify(logged).ok


def test_a_forged_block_is_never_taken_for_the_log(logged: Registry) -> None:
    real = logged.history("m")
    _forge_last_entry(logged, 17)  # chains inside the block: only the event after the block can tell
    entries = log_index.entries("m", 17, logged.store.get(log_index.block_key("m", 17)).data)
    assert entries is not None and log_index.read(logged.store, "m", 17, sha256(_raw_history(logged)[15]))
    assert logged.history("m") == real
    assert all(e.actor != "mallory" for e in logged.history("m"))
    report = verify(logged)
    assert not report.ok and "log_index_altered" in report.kinds()
    actions = repair(logged, apply=True, grace_s=0)
    assert any(a["key"] == log_index.block_key("m", 17) for a in actions)
    assert logged.history("m") == real  # read one by one, and packed again from the log
    assert (
        log_index.entries("m", 17, logged.store.get(log_index.block_key("m", 17)).data) == _raw_history(logged)[16:24]
    )
    assert verify(logged).ok


def test_a_block_nothing_follows_is_not_used(location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_index, "BLOCK", BLOCK)
    reg = Registry.open(location)
    for i in range(1, 17):  # exactly two blocks: no event after the second confirms it
        reg.register("m", b"v%d" % i, VersionInfo(), fmt="bytes", actor=f"user{i}")
    real = reg.history("m")
    assert reg.store.exists(log_index.block_key("m", 9))
    _forge_last_entry(reg, 9)
    fresh = Registry.open(location)  # a new store object: this process knows nothing of its log yet
    assert fresh.history("m") == real and reg.history("m") == real


def test_an_unusable_block_is_ignored_and_reported(logged: Registry) -> None:
    real = logged.history("m")
    logged.store.put(log_index.block_key("m", 9), b"{not json")
    assert logged.history("m") == real
    assert "log_index_unusable" in verify(logged).kinds()
