"""Retention (issue 12): gc and model deletion leave tombstones, keep what must be kept, and verify stays whole."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.core.keys import blob_key
from prefect_model_registry.registry.core.retention import gc, parse_age
from prefect_model_registry.registry.errors import InvalidMetadata, RegistryError, StoreError, VersionDeleted
from prefect_model_registry.registry.maintenance.verify import verify
from prefect_model_registry.registry.models import Lineage, sha256
from tests.conftest import snapshot
from tests.registry.test_cli import pmr


def _register(reg: Registry, name: str, payload: bytes, parent: int | None = None, **info: object) -> int:
    lineage = Lineage(parent_version=parent)
    return reg.register(name, payload, VersionInfo(lineage=lineage, **info), fmt="bytes").version  # type: ignore[arg-type]


def _history(reg: Registry) -> None:
    """v1..v8 of churn: v2 was in production, v5 is, v6 is staged, v3 carries an alias, v7's parent is v4."""
    for i in range(1, 9):
        _register(reg, "churn", b"model-%d" % i, parent=4 if i == 7 else None)
    for version in (2, 5):
        reg.promote("churn", version, "staging")
        reg.promote("churn", version, "production")
    reg.promote("churn", 6, "staging")
    reg.set_alias("churn", "shadow", 3)
    reg.set_alias("churn", "candidate", 7)


def test_gc_keeps_protected_versions_and_verify_passes(reg: Registry) -> None:
    _history(reg)
    before = snapshot(reg)
    dry = gc(reg, "churn", keep_last=1, grace_s=0)
    assert dry.deleted == [1] and not dry.applied
    assert dry.blobs_deleted == [blob_key(sha256(b"model-1"))]
    assert snapshot(reg) == before  # a dry run writes nothing
    assert dry.kept == {
        2: "was in production (rollback target)",
        3: "alias 'shadow'",
        4: "parent of v7",
        5: "in production",
        6: "in staging",
        7: "alias 'candidate'",
        8: "among the last 1",
    }
    done = gc(reg, "churn", keep_last=1, apply=True, reason="bucket too big", actor="ops", grace_s=0)
    assert done.deleted == [1] and done.event_seq is not None
    event = reg.history("churn")[-1]
    assert (event.type, event.actor, event.reason, event.data["versions"]) == ("deleted", "ops", "bucket too big", [1])
    assert not reg.store.exists(blob_key(sha256(b"model-1")))
    assert verify(reg).ok, verify(reg).findings
    assert [mv.version for mv in reg.search("churn")] == [8, 7, 6, 5, 4, 3, 2]
    assert reg.get_version("churn", 1).artifact.sha256 == sha256(b"model-1")  # the manifest stays: history
    with pytest.raises(VersionDeleted):
        reg.load_bytes("models:/churn/1")
    with pytest.raises(VersionDeleted):
        reg.set_alias("churn", "back", 1)
    with pytest.raises(VersionDeleted):
        reg.promote("churn", 1, "staging")
    again = gc(reg, "churn", keep_last=1, apply=True, grace_s=0)  # a retry: nothing new, no second event
    assert again.deleted == [] and again.event_seq is None and reg.history("churn")[-1].seq == event.seq
    assert reg.rollback("churn").data["to"] == 2  # the rollback target survived
    assert reg.load_bytes("churn@production")[1] == b"model-2"
    assert _register(reg, "churn", b"model-9") == 9  # numbers are never reused


def test_a_version_that_left_production_stays_protected(reg: Registry) -> None:
    # Found by the property below: archiving the production version, or rolling back past it, took it off the
    # rollback stack, and gc then deleted a version that had been in production.
    for n in range(4):
        _register(reg, "m", b"left-%d" % n)
    reg.promote("m", 1, "staging")
    reg.promote("m", 1, "production")
    reg.archive("m", 1)  # production -> archived
    reg.promote("m", 2, "production", through_staging=True)
    reg.promote("m", 3, "production", through_staging=True)
    reg.rollback("m")  # v3 out, v2 back
    result = gc(reg, "m", keep_last=0, grace_s=0, apply=True)
    assert result.deleted == [4]
    assert {v: why for v, why in result.kept.items() if v in (1, 3)} == {
        1: "was in production (rollback target)",
        3: "was in production (rollback target)",
    }
    assert reg.state("m").ever_in_production == [1, 2, 3]
    assert verify(reg).ok


def test_shared_blobs_survive_and_young_blobs_wait(reg: Registry) -> None:
    _register(reg, "churn", b"same bytes")
    _register(reg, "churn", b"only v2")
    _register(reg, "fraud", b"same bytes")  # another model names the same artifact
    _register(reg, "churn", b"v3")
    young = gc(reg, "churn", keep_last=1, apply=True)  # default grace: just written, so kept for later
    assert young.deleted == [1, 2] and young.blobs_deleted == [] and len(young.blobs_young) == 1
    assert reg.store.exists(blob_key(sha256(b"only v2")))
    later = gc(reg, "churn", keep_last=1, apply=True, grace_s=0)  # the next run finishes the sweep
    assert later.deleted == [] and later.blobs_deleted == [blob_key(sha256(b"only v2"))]
    assert reg.load_bytes("models:/fraud/1")[1] == b"same bytes"
    assert verify(reg).ok, verify(reg).findings


def test_older_than_uses_registration_time(reg: Registry) -> None:
    for i in range(3):
        _register(reg, "churn", b"m%d" % i)
    assert gc(reg, "churn", older_than=timedelta(days=90)).deleted == []
    later = datetime.now(UTC) + timedelta(days=91)
    assert gc(reg, "churn", older_than=timedelta(days=90), keep_last=1, now=later).deleted == [1, 2]
    assert parse_age("90d") == timedelta(days=90) and parse_age("2w") == timedelta(days=14)
    for bad in ("90", "d", "-1d", "1.5h", "٣d"):
        with pytest.raises(InvalidMetadata):
            parse_age(bad)
    with pytest.raises(InvalidMetadata):
        gc(reg, "churn")  # nothing said about what to keep
    with pytest.raises(InvalidMetadata):
        gc(reg, "churn", keep_last=-1)


def test_a_sweep_that_fails_after_the_event_is_finished_by_the_next_run(reg: Registry, monkeypatch) -> None:
    for i in range(3):
        _register(reg, "churn", b"m%d" % i)
    real = type(reg.store).delete

    def broken(self, key: str) -> None:
        raise StoreError("the store went away")

    monkeypatch.setattr(type(reg.store), "delete", broken)
    first = gc(reg, "churn", keep_last=1, apply=True, grace_s=0)
    assert first.deleted == [1, 2] and first.event_seq and "went away" in (first.sweep_error or "")
    monkeypatch.setattr(type(reg.store), "delete", real)
    second = gc(reg, "churn", keep_last=1, apply=True, grace_s=0)
    assert second.deleted == [] and sorted(second.blobs_deleted) == sorted(blob_key(sha256(b)) for b in (b"m0", b"m1"))
    assert [e.type for e in reg.history("churn")].count("deleted") == 1
    assert verify(reg).ok


def test_delete_model_needs_the_name_and_keeps_history(reg: Registry) -> None:
    _history(reg)
    before = snapshot(reg)
    with pytest.raises(InvalidMetadata):
        reg.delete_model("churn", confirm="chrun")
    dry = reg.delete_model("churn")
    assert dry.deleted == list(range(1, 9)) and not dry.applied
    assert snapshot(reg) == before
    done = reg.delete_model("churn", confirm="churn", reason="retired", grace_s=0)
    assert done.applied and done.deleted == list(range(1, 9))
    state = reg.state("churn")
    assert state.production is None and state.aliases == {} and state.stages == {}
    assert reg.overview()[0]["deleted"] is True
    assert not any(k.startswith("blobs/") and reg.store.get(k).data.startswith(b"model-") for k in reg.store.list(""))
    assert verify(reg).ok, verify(reg).findings
    assert [e.type for e in reg.history("churn")][-1] == "deleted"


def test_cli_gc_and_delete_model(reg: Registry, location: str, capsys: pytest.CaptureFixture[str]) -> None:
    _history(reg)
    loc = location
    before = snapshot(reg)
    code, out, _ = pmr(capsys, "--registry", loc, "gc", "churn", "--keep-last", "1", "--grace", "0s")
    assert code == 0 and "would delete 1 version(s)" in out and "dry run" in out
    assert snapshot(reg) == before
    code, out, _ = pmr(capsys, "--registry", loc, "gc", "churn", "--keep-last", "1", "--apply", "--json")
    assert code == 0 and '"deleted": [\n    1\n  ]' in out
    code, _, err = pmr(capsys, "--registry", loc, "gc", "churn", "--older-than", "ninety days")
    assert code == 2 and "age must look like" in err
    after = snapshot(reg)
    code, _, err = pmr(capsys, "--registry", loc, "delete-model", "churn", "--confirm", "fraud")
    assert code == 2 and "does not match" in err and snapshot(reg) == after
    code, out, _ = pmr(capsys, "--registry", loc, "delete-model", "churn", "--confirm", "churn", "--grace", "0s")
    assert code == 0 and "deleted 7 version(s)" in out


# -- property: over random histories, gc never removes a version that must be kept --------------------------
OPS = st.lists(
    st.tuples(st.sampled_from(["register", "stage", "promote", "alias", "rollback", "archive"]), st.integers(1, 12)),
    min_size=3,
    max_size=24,
)


def _play(reg: Registry, ops: list[tuple[str, int]]) -> None:
    count = 0
    for op, n in ops:
        if op == "register" or count == 0:
            parent = n % (count + 1) or None  # some versions name an earlier one as their parent
            count = _register(reg, "m", b"payload-%d" % (n % 4), parent=parent)  # shared bytes too
            continue
        version = n % count + 1
        try:
            if op == "stage":
                reg.promote("m", version, "staging")
            elif op == "promote":
                reg.promote("m", version, "production")
            elif op == "alias":
                reg.set_alias("m", f"a{n % 3}", version)
            elif op == "rollback":
                reg.rollback("m")
            else:
                reg.archive("m", version)
        except RegistryError:
            pass  # refused by the lifecycle: part of a random history


def _must_keep(reg: Registry) -> set[int]:
    """Computed from the events and manifests, not from the state retention reads."""
    state = reg.state("m")
    keep = {v for v, stage in state.stages.items() if stage in ("production", "staging")} | set(state.aliases.values())
    for event in reg.history("m"):
        if event.type == "stage_changed" and event.data.get("to") == "production":
            keep.add(event.version)
        if event.type == "rolled_back":
            keep.add(event.data["to"])
    todo = list(keep)
    while todo:
        parent = reg.get_version("m", todo.pop()).lineage.parent_version
        if parent is not None and parent not in keep:
            keep.add(parent)
            todo.append(parent)
    return keep


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, keep_last=st.integers(0, 3))
def test_gc_never_removes_a_protected_version(ops: list[tuple[str, int]], keep_last: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        reg = Registry.open(root, cache_dir=None)
        _play(reg, ops)
        must_keep = _must_keep(reg)
        could_roll_back = len({*reg.state("m").production_history}) > 1
        before = snapshot(reg)
        assert (
            gc(reg, "m", keep_last=keep_last, grace_s=0).deleted
            == gc(reg, "m", keep_last=keep_last, apply=True, grace_s=0).deleted
        )
        assert {k for k in before if not k.startswith("blobs/")} <= snapshot(reg).keys()  # history stays
        state = reg.state("m")
        latest = reg.latest_version("m")
        assert not must_keep & set(state.deleted)
        assert not set(range(latest - keep_last + 1, latest + 1)) & set(state.deleted)
        for version in set(range(1, latest + 1)) - set(state.deleted):
            reg.load_bytes(f"models:/m/{version}")  # every survivor still loads (shared blobs were kept)
        report = verify(reg)
        assert report.ok, report.findings
        if could_roll_back:
            reg.rollback("m")
            assert reg.load_bytes("m@production")
