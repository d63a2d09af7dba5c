"""One regression test per defect found when the registry was probed from outside (issue 10). Defects covered
by the tamper matrix (corrupt, edited or deleted claims; edited reports; gaps; a rewritten newest event; hints)
are named there; these are the rest, each through the public API or the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.cli import main
from prefect_model_registry.registry.core import background
from prefect_model_registry.registry.core import keys as K
from prefect_model_registry.registry.core.drafts import Draft
from prefect_model_registry.registry.core.log import ModelLog
from prefect_model_registry.registry.errors import (
    InvalidMetadata,
    InvalidName,
    InvalidURI,
    PromotionBlocked,
    StoreError,
)
from prefect_model_registry.registry.maintenance.repair import repair
from prefect_model_registry.registry.maintenance.verify import verify
from prefect_model_registry.registry.models import canonical_json, sha256
from tests.conftest import snapshot

FAILED = {"gate": "thresholds", "passed": False, "checks": [{"name": "auc >= 0.9", "passed": False}]}


@contextmanager
def failing_puts(reg: Registry, fragment: str, times: int = 1, *, after_write: bool = False) -> Iterator[None]:
    """Make the next ``times`` puts whose key holds ``fragment`` fail (after writing, with ``after_write``)."""
    store_type = type(reg.store)
    real = store_type.put
    left = [times]

    def put(self: Any, key: str, data: bytes, **kwargs: Any) -> str:
        if fragment in key and left[0]:
            left[0] -= 1
            if after_write:
                real(self, key, data, **kwargs)
            raise StoreError(f"injected: connection reset on {key}")
        return real(self, key, data, **kwargs)

    store_type.put = put  # type: ignore[method-assign]
    try:
        yield
    finally:
        store_type.put = real  # type: ignore[method-assign]


@pytest.fixture
def staged(reg: Registry) -> Registry:
    reg.register("m", b"v1", fmt="bytes")
    reg.promote("m", 1, "staging")
    return reg


@pytest.mark.parametrize("key", [None, "run-9/thresholds"])
def test_a_failed_gate_whose_event_append_failed_is_enforced_after_the_retry(staged: Registry, key: Any) -> None:
    with failing_puts(staged, "/events/"), pytest.raises(StoreError):
        staged.record_report("m", 1, "thresholds", FAILED, passed=False, operation_key=key)
    event = staged.record_report("m", 1, "thresholds", FAILED, passed=False, operation_key=key)
    assert event is not None and event.type == "validated"  # the retry logged it (it used to return None)
    with pytest.raises(PromotionBlocked):
        staged.promote("m", 1, "production")
    assert staged.record_report("m", 1, "thresholds", FAILED, passed=False, operation_key=key) in (None, event)


@pytest.mark.parametrize(
    "report",
    [["not", "a", "mapping"], {1: "non-string key"}, {"nested": {2: "x"}}, {"x": float("nan")}, {"s": "\ud800"}],
)
def test_a_malformed_report_is_refused_before_anything_is_written(staged: Registry, report: Any) -> None:
    before = snapshot(staged)
    with pytest.raises(InvalidMetadata):
        staged.record_report("m", 1, "thresholds", report, passed=False)
    assert snapshot(staged) == before


def test_a_promotion_whose_event_landed_succeeds_even_if_the_snapshot_write_fails(staged: Registry) -> None:
    with failing_puts(staged, "state.json", times=5):
        event = staged.promote("m", 1, "production", operation_key="run-3/promote")
    assert event.data["to"] == "production" and staged.state("m").production == 1
    again = staged.promote("m", 1, "production", operation_key="run-3/promote")  # was InvalidTransition
    assert again == event


def test_a_retried_rollback_rolls_back_once(reg: Registry) -> None:
    for v in (1, 2, 3):
        reg.register("m", f"v{v}".encode(), fmt="bytes")
        reg.promote("m", v, "staging")
        reg.promote("m", v, "production")
    # The event is written but the answer is lost: the caller sees an error and retries.
    with failing_puts(reg, "/events/", after_write=True), pytest.raises(StoreError):
        reg.rollback("m", reason="incident", operation_key="run-4/rollback")
    event = reg.rollback("m", reason="incident", operation_key="run-4/rollback")
    assert (event.data["from"], event.data["to"]) == (3, 2)
    assert reg.state("m").production == 2  # not 1: it did not roll back twice
    assert [e.type for e in reg.history("m")].count("rolled_back") == 1


def test_rollback_and_its_alias_moves_are_one_event(reg: Registry) -> None:
    for v in (1, 2):
        reg.register("m", f"v{v}".encode(), fmt="bytes")
        reg.promote("m", v, "staging")
        reg.promote("m", v, "production")
    reg.set_alias("m", "champion", 2)
    reg.set_alias("m", "canary", 2)
    before = len(reg.history("m"))
    event = reg.rollback("m", reason="incident", move_aliases=True)
    assert len(reg.history("m")) == before + 1  # no separate alias events that a crash could cut off
    assert event.data["aliases"] == ["canary", "champion"]
    assert reg.state("m").aliases == {"champion": 1, "canary": 1}
    assert "moved canary, champion" in str(event)


def test_an_unkeyed_cli_register_run_twice_returns_the_same_version(tmp_path: Path, capsys: Any) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"identical bytes")
    args = ["--registry", str(tmp_path / "reg"), "--json", "register", "m", str(model), "--format", "bytes"]
    versions = []
    for _ in range(2):
        with pytest.raises(SystemExit) as exit_info:
            main([*args, "--metric", "auc=0.9"])
        assert exit_info.value.code in (0, None)
        versions.append(json.loads(capsys.readouterr().out)["version"])
    assert versions == [1, 1]
    with pytest.raises(SystemExit):  # a new key says "a new version on purpose"
        main([*args, "--metric", "auc=0.9", "--key", "second-upload"])
    assert json.loads(capsys.readouterr().out)["version"] == 2


@pytest.mark.parametrize(("hint", "next_version"), [(b"41", 3), (b"-4", 3), (b"0", 3), (b"junk", 3), (b"", 3)])
def test_a_bad_latest_hint_makes_no_gap_and_no_version_below_one(reg: Registry, hint: bytes, next_version: int) -> None:
    reg.register("m", b"v1", fmt="bytes")
    reg.register("m", b"v2", fmt="bytes")
    reg.store.put(K.hint_key("m"), hint)
    assert reg.resolve("m/latest").version == 2
    assert reg.register("m", b"v3", fmt="bytes").version == next_version
    assert reg.latest_version("m") == 3 and verify(reg).ok


@pytest.mark.parametrize("name", ["m\n", "m\n\n", "\nm"])
def test_names_and_aliases_with_a_newline_are_refused(reg: Registry, name: str) -> None:
    with pytest.raises(InvalidName):
        reg.register(name, b"x", fmt="bytes")
    reg.register("m", b"x", fmt="bytes")
    with pytest.raises(InvalidName):
        reg.set_alias("m", "champion\n", 1)
    assert list(reg.store.list("models/")) and not any("\n" in k for k in reg.store.list(""))


@pytest.mark.parametrize("uri", ["m/²", "m/١", "m/1\n", "models:/m/٣"])
def test_non_ascii_digits_in_a_uri_are_a_typed_error(reg: Registry, uri: str, capsys: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidURI):
        reg.resolve(uri)
    with pytest.raises(SystemExit) as exit_info:
        main(["--registry", str(tmp_path / "r"), "show", uri])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err and "malformed model URI" in err


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.register("m", b"x", VersionInfo(description="\udc80"), fmt="bytes"),
        lambda r: r.register("m", b"x", VersionInfo(tags={"team": "\ud83d"}), fmt="bytes"),
        lambda r: r.register("m", b"x", VersionInfo(params={"a": {"\ud800": 1}}), fmt="bytes"),
        lambda r: r.register("m", b"x", fmt="bytes", operation_key="key-\udfff"),
        lambda r: r.promote("good", 1, "staging", reason="why \ud800"),
        lambda r: r.set_alias("good", "champion", 1, operation_key="\ud800"),
        lambda r: r.record_decision("good", 1, approved=False, reviewer="bob", comment="\udc00"),
        lambda r: r.rollback("good", reason="\ud800"),
    ],
)
def test_lone_surrogates_are_refused_before_anything_is_written(reg: Registry, call: Any) -> None:
    reg.register("good", b"g", fmt="bytes")
    before = snapshot(reg)
    with pytest.raises(InvalidMetadata):
        call(reg)
    assert snapshot(reg) == before  # no blob either: it used to be written before the UnicodeEncodeError


@pytest.mark.parametrize("params", [{"a": {1: "x"}}, {"a": [{2: "y"}]}, {"a": {(1, 2): 3}}, {"a": {None: 1}}])
def test_nested_non_string_param_keys_are_refused_not_changed(reg: Registry, params: dict[str, Any]) -> None:
    before = snapshot(reg)
    with pytest.raises(InvalidMetadata):
        reg.register("m", b"x", VersionInfo.model_construct(params=params), fmt="bytes")
    assert snapshot(reg) == before


def test_leftover_temporary_files_are_reported_and_repaired(tmp_path: Path, capsys: Any) -> None:
    reg = Registry.open(tmp_path / "reg")
    reg.register("m", b"x", fmt="bytes")
    reg.store._write_temp(b"a write killed before it was published")  # type: ignore[attr-defined]
    report = verify(reg)
    assert report.ok and "temp_file" in report.kinds()
    with pytest.raises(SystemExit):
        main(["--registry", str(tmp_path / "reg"), "--json", "verify", "--repair"])
    dry = json.loads(capsys.readouterr().out)
    assert dry["applied"] is False and dry["actions"] == []  # younger than the grace period: left alone

    assert [a["action"] for a in repair(reg, apply=True, grace_s=0)] == ["delete"]
    assert "temp_file" not in verify(reg).kinds()


def test_verify_json_reports_each_models_head_and_checks_it_later(tmp_path: Path, capsys: Any) -> None:
    r = ["--registry", str(tmp_path / "reg")]
    reg = Registry.open(tmp_path / "reg")
    reg.register("m", b"x", fmt="bytes")
    with pytest.raises(SystemExit):
        main([*r, "--json", "verify"])
    saved = capsys.readouterr().out
    heads = json.loads(saved)["heads"]
    assert heads["m"]["seq"] == 1 and len(heads["m"]["hash"]) == 64
    (tmp_path / "heads.json").write_text(saved)
    key = K.event_key("m", 1)
    reg.store.put(key, reg.store.get(key).data.replace(b'"actor":"pytest"', b'"actor":"mallet"'))
    reg.store.delete(K.state_key("m"))
    with pytest.raises(SystemExit) as exit_info:
        main([*r, "verify", "--against", str(tmp_path / "heads.json")])
    assert exit_info.value.code == 1 and "head_mismatch" in capsys.readouterr().out


def test_a_registry_written_before_operation_keys_still_reads_and_verifies(reg: Registry) -> None:
    """Old layout: later reports under models/<name>/reports/, events without op_key, snapshots without reports."""
    reg.register("m", b"x", fmt="bytes")
    raw = canonical_json(FAILED)
    reg.store.put(K.legacy_reports_prefix("m", 1) + "thresholds.json", raw)
    data = {"gate": "thresholds", "passed": False, "report_sha256": sha256(raw)}
    ModelLog(reg.store, "m").append(lambda _st: Draft("validated", 1, "old-release", "", None, data))
    background.flush()  # the snapshot refresh after that append runs in the background
    old_snapshot = json.loads(reg.store.get(K.state_key("m")).data)
    old_snapshot.pop("reports")
    reg.store.put(K.state_key("m"), json.dumps(old_snapshot).encode())
    assert reg.reports("m", 1)["thresholds"] == FAILED
    assert reg.state("m").blocked == {1: ["gate:thresholds"]}
    report = verify(reg)
    assert report.ok and report.kinds() == {"snapshot_outdated"}, report.findings
    reg.store.put(K.legacy_reports_prefix("m", 1) + "thresholds.json", raw.replace(b"false", b"true", 1))
    assert "report_altered" in verify(reg).kinds()
