"""A tamper matrix over every kind of stored object: what ``verify`` must report (it never raises) and what
reading it must do (a typed error, never wrong data)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from unittest.mock import ANY

import pytest

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.core import keys as K
from prefect_model_registry.registry.errors import IdempotencyConflict, IntegrityError, RegistryError, VersionNotFound
from prefect_model_registry.registry.maintenance.repair import repair
from prefect_model_registry.registry.maintenance.verify import verify

DQ = {"gate": "data_quality", "passed": True, "checks": []}
LATER = {"gate": "thresholds", "passed": True, "checks": [{"name": "auc", "passed": True}]}
KEY = "run-1/register"
WARNINGS = {"orphan_blob", "hint_invalid"}


@pytest.fixture
def populated(reg: Registry) -> Registry:
    reg.register("m", b"artifact-1" * 20, VersionInfo(reports={"data_quality": DQ}), fmt="bytes")
    reg.register("m", b"artifact-2" * 20, fmt="bytes", operation_key=KEY)
    reg.register("m", b"artifact-3" * 20, fmt="bytes")
    reg.promote("m", 2, "staging", operation_key="run-1/stage")
    reg.record_report("m", 2, "thresholds", LATER, passed=True, operation_key="run-1/thresholds")
    reg.promote("m", 2, "production", operation_key="run-1/production")
    reg.set_alias("m", "champion", 2)
    report = verify(reg)
    assert report.ok and not report.findings, report.findings
    return reg


def _flip(reg: Registry, key: str, at: int | None = None) -> None:
    data = bytearray(reg.store.get(key).data)
    i = len(data) // 2 if at is None else at
    data[i] ^= 0x01
    reg.store.put(key, bytes(data))


def _edit(reg: Registry, key: str, old: bytes, new: bytes) -> None:
    raw = reg.store.get(key).data
    assert old in raw, (key, raw[:200])
    reg.store.put(key, raw.replace(old, new, 1))


def _raises(exc: type[BaseException], call: Callable[[Registry], Any]) -> Callable[[Registry], None]:
    def check(reg: Registry) -> None:
        with pytest.raises(exc):
            call(reg)

    return check


def _next_event(reg: Registry) -> str:
    return K.event_key("m", len(reg.history("m")) + 1)


def _artifact(v: int) -> Callable[[Registry], str]:
    return lambda reg: reg.get_version("m", v).artifact.key


def _later_report(reg: Registry) -> str:
    return K.blob_key(reg.state("m").reports[2]["thresholds"])


def _claim(reg: Registry) -> str:
    return K.claim_key("m", KEY)


def _register_again(reg: Registry) -> Any:
    return reg.register("m", b"artifact-2" * 20, fmt="bytes", operation_key=KEY)


def _last_event(reg: Registry) -> str:
    return list(reg.store.list(K.events_prefix("m")))[-1]


@dataclass(frozen=True)
class Case:
    id: str
    tamper: Callable[[Registry], None]
    kinds: set[str]  # verify must report at least one of these
    read: Callable[[Registry], None] | None = None  # what reading the tampered object must do


CASES = [
    Case(
        "artifact-flipped",
        lambda r: _flip(r, _artifact(2)(r)),
        {"blob_altered"},
        _raises(IntegrityError, lambda r: r.load("m@production")),
    ),
    Case(
        "artifact-deleted",
        lambda r: r.store.delete(_artifact(1)(r)),
        {"blob_missing"},
        _raises(IntegrityError, lambda r: r.load_bytes("m/1")),
    ),
    Case(
        "registration-report-flipped",
        lambda r: _flip(r, r.get_version("m", 1).reports["data_quality"].key),
        {"blob_altered"},
        _raises(IntegrityError, lambda r: r.reports("m", 1)),
    ),
    Case(
        "later-report-flipped",
        lambda r: _flip(r, _later_report(r)),
        {"blob_altered"},
        _raises(IntegrityError, lambda r: r.reports("m", 2)),
    ),
    Case(
        "later-report-edited",
        lambda r: _edit(r, _later_report(r), b'"passed":true', b'"passed":false'),
        {"blob_altered"},
        _raises(IntegrityError, lambda r: r.reports("m", 2)),
    ),
    Case(
        "later-report-deleted",
        lambda r: r.store.delete(_later_report(r)),
        {"report_missing"},
        _raises(IntegrityError, lambda r: r.reports("m", 2)),
    ),
    Case(
        "manifest-edited",
        lambda r: _edit(r, K.manifest_key("m", 1), b'"description":""', b'"description":"x"'),
        {"manifest_altered"},
    ),
    Case(
        "manifest-garbage",
        lambda r: r.store.put(K.manifest_key("m", 3), b"{not json"),
        {"manifest_corrupt"},
        _raises(IntegrityError, lambda r: r.get_version("m", 3)),
    ),
    Case(
        "manifest-deleted",
        lambda r: r.store.delete(K.manifest_key("m", 3)),
        {"manifest_missing"},
        _raises(VersionNotFound, lambda r: r.get_version("m", 3)),
    ),
    Case(
        "first-event-edited",
        lambda r: _edit(r, K.event_key("m", 1), b'"actor":"pytest"', b'"actor":"pytesT"'),
        {"chain_broken"},
        _raises(IntegrityError, lambda r: r.history("m")),
    ),
    Case(
        "middle-event-garbage",
        lambda r: r.store.put(K.event_key("m", 3), b"\x00garbage"),
        {"event_corrupt"},
        _raises(IntegrityError, lambda r: r.history("m")),
    ),
    Case(
        "middle-event-deleted",
        lambda r: r.store.delete(K.event_key("m", 3)),
        {"event_gap"},
        _raises(IntegrityError, lambda r: r.history("m")),
    ),
    Case(
        "event-left-empty",  # a PUT whose body never came, on a server that stored it
        lambda r: r.store.put(_next_event(r), b""),
        {"event_torn"},
        _raises(IntegrityError, lambda r: r.history("m")),
    ),
    Case("last-event-flipped", lambda r: _flip(r, _last_event(r)), {"snapshot_altered", "event_corrupt"}),
    Case("stray-event", lambda r: r.store.put(K.events_prefix("m") + "x.json", b"{}"), {"stray"}),
    Case(
        "snapshot-edited", lambda r: _edit(r, K.state_key("m"), b'"champion":2', b'"champion":1'), {"snapshot_altered"}
    ),
    Case("snapshot-garbage", lambda r: r.store.put(K.state_key("m"), b"[1,2"), {"snapshot_corrupt"}),
    Case(
        "hint-ahead",
        lambda r: r.store.put(K.hint_key("m"), b"40"),
        {"hint_invalid"},
        lambda r: (r.latest_version("m") == 3 and r.resolve("m/latest").version == 3) or pytest.fail("hint trusted"),
    ),
    Case(
        "hint-negative",
        lambda r: r.store.put(K.hint_key("m"), b"-4"),
        {"hint_invalid"},
        lambda r: r.register("m", b"next", fmt="bytes").version == 4 or pytest.fail("hint trusted"),
    ),
    Case(
        "hint-garbage",
        lambda r: r.store.put(K.hint_key("m"), b"\xff\xfe"),
        {"hint_invalid"},
        lambda r: r.resolve("m/latest").version == 3 or pytest.fail("hint trusted"),
    ),
    Case(
        "claim-garbage",
        lambda r: r.store.put(_claim(r), b"{oops"),
        {"claim_corrupt"},
        _raises(IntegrityError, _register_again),
    ),
    Case(
        "claim-points-elsewhere",
        lambda r: _edit(r, _claim(r), b'"version":2', b'"version":1'),
        {"claim_altered"},
        lambda r: _register_again(r).version == 2 or pytest.fail("an edited claim returned the wrong version"),
    ),
    Case(
        "claim-request-edited",
        lambda r: _edit(r, _claim(r), b'"request":"', b'"request":"0'),
        {"claim_altered"},
        _raises(IdempotencyConflict, _register_again),
    ),
    Case("claim-deleted", lambda r: r.store.delete(_claim(r)), {"claim_missing"}),
    Case("op-claim-deleted", lambda r: r.store.delete(K.claim_key("m", "run-1/production")), {"claim_missing"}),
    Case("orphan-blob", lambda r: r.store.put(K.blob_key("0" * 64), b"orphan"), {"orphan_blob"}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_tamper_matrix(populated: Registry, case: Case) -> None:
    case.tamper(populated)
    report = verify(populated)  # never raises on damage
    assert report.kinds() & case.kinds, (case.id, report.findings)
    # Damage is an error; only caches and leftovers (an unusable hint, an orphan blob) are warnings.
    assert report.ok == (case.kinds <= WARNINGS), report.findings
    if case.read is not None:
        case.read(populated)
    # Repair (dry run) never raises either, and never proposes touching history (an empty object is none).
    for action in repair(populated):
        if case.kinds == {"event_torn"}:
            assert populated.store.get(action["key"]).data == b"", action
            continue
        assert "/events/" not in action["key"] and "/versions/" not in action["key"], action


def test_an_empty_object_at_the_end_of_the_log_is_removed_and_the_model_goes_on(populated: Registry) -> None:
    history = populated.history("m")
    torn = _next_event(populated)
    populated.store.put(torn, b"")
    with pytest.raises(IntegrityError, match="verify --repair"):
        populated.register("m", b"blocked", fmt="bytes", operation_key="run-2/register")
    assert populated.latest_version("m") == 3  # the log is read before anything is written
    assert repair(populated) == [{"action": "delete", "key": torn, "why": ANY}]
    assert populated.store.exists(torn)  # a dry run changes nothing
    repair(populated, apply=True)
    # The retry of the failed registration finishes it: the same version, logged once, after the old history.
    assert populated.register("m", b"blocked", fmt="bytes", operation_key="run-2/register").version == 4
    assert populated.history("m")[: len(history)] == history
    assert [(e.type, e.version) for e in populated.history("m")[len(history) :]] == [("registered", 4)]
    assert populated.register("m", b"next", fmt="bytes").version == 5
    assert verify(populated).ok and not verify(populated).findings


def test_an_empty_event_with_events_after_it_is_damage_not_torn(populated: Registry) -> None:
    last = K.event_key("m", len(populated.history("m")))
    populated.store.put(K.event_key("m", 3), b"")
    report = verify(populated)
    assert "event_corrupt" in report.kinds() and "event_torn" not in report.kinds()
    assert all(a["key"] != K.event_key("m", 3) for a in repair(populated))
    assert populated.store.exists(last)


def test_a_rewritten_newest_event_is_caught_against_a_head_recorded_outside(populated: Registry) -> None:
    heads = verify(populated).heads
    assert heads["m"]["seq"] == len(populated.history("m"))
    # Rewrite the newest event and a snapshot that matches it: nothing inside the bucket disagrees any more.
    last = _last_event(populated)
    _edit(populated, last, b'"actor":"pytest"', b'"actor":"mallet"')
    populated.store.delete(K.state_key("m"))
    inside = verify(populated)
    assert "chain_broken" not in inside.kinds()
    against = verify(populated, expected_heads=heads)
    assert "head_mismatch" in against.kinds() and not against.ok


def test_repair_cleans_only_safe_things(populated: Registry) -> None:
    populated.store.put(K.blob_key("1" * 64), b"orphan")
    populated.store.put(K.hint_key("m"), b"99")
    history = {k: populated.store.get(k).data for k in populated.store.list("models/m/events/")}
    dry = repair(populated, grace_s=0)
    assert {a["key"] for a in dry} >= {K.blob_key("1" * 64), K.hint_key("m")}
    assert populated.store.exists(K.blob_key("1" * 64))  # a dry run changes nothing
    done = repair(populated, apply=True, grace_s=0)
    assert done == dry
    assert not populated.store.exists(K.blob_key("1" * 64)) and not populated.store.exists(K.hint_key("m"))
    assert {k: populated.store.get(k).data for k in populated.store.list("models/m/events/")} == history
    assert verify(populated).findings == []
    with pytest.raises(RegistryError):
        populated.store.get(K.blob_key("1" * 64))
