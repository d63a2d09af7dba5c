"""Damage is typed: a chained event with a missing or mistyped field, and a malformed gate report (issue 27).

A correctly chained event (its hash chain intact: written by someone with write access, or a bug) with a
missing field used to stop every read of its model with a ``KeyError``, and a mistyped one silently changed the
state. Now reads fail with :class:`MalformedEvent` naming the event, ``verify`` reports it (``event_malformed``)
and ``verify --repair`` says what a person must do. A gate report whose ``checks`` is not a list used to raise a
``TypeError`` in ``record_report`` (found by fuzzing); a report's ``passed`` of ``"false"`` counted as passed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.cli import main
from prefect_model_registry.registry.core import keys
from prefect_model_registry.registry.errors import InvalidMetadata, MalformedEvent, RegistryError
from prefect_model_registry.registry.maintenance.verify import verify
from prefect_model_registry.registry.models import Event, sha256, utcnow
from tests.conftest import snapshot

DAMAGE = {
    "stage change without its target": ("stage_changed", 1, {"from": "staging", "archived": []}),
    "stage change to a number": ("stage_changed", 1, {"from": "staging", "to": 5, "archived": []}),
    "stage change to no stage": ("stage_changed", 1, {"from": "staging", "to": "prod", "archived": []}),
    "stage change of no version": ("stage_changed", None, {"from": "none", "to": "staging", "archived": []}),
    "archived not a list": ("stage_changed", 1, {"from": "staging", "to": "production", "archived": 7}),
    "alias without its name": ("alias_set", 1, {"previous": None}),
    "alias named by a list": ("alias_set", 1, {"alias": ["champion"]}),
    "rollback without its target": ("rolled_back", 1, {"from": 1}),
    "tags as a list": ("tagged", 1, {"set": ["a", "b"], "removed": []}),
    "gate without its name": ("validated", 1, {"passed": False}),
    "policy that is no policy": ("policy_set", None, {"stages": "production", "four_eyes": "yes"}),
}


def pmr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def append_raw(location: str, event_type: str, version: int | None, data: dict[str, Any]) -> int:
    """Append a correctly chained event with the given fields, as someone with write access could."""
    store = Registry.open(location).store
    seq = max(keys.parse_number(k, keys.events_prefix("m")) or 0 for k in store.list(keys.events_prefix("m")))
    prev = sha256(store.get(keys.event_key("m", seq)).data)
    event = Event(
        seq=seq + 1, type=event_type, model="m", version=version, actor="x", at=utcnow(), data=data, prev_hash=prev
    )
    store.put(keys.event_key("m", seq + 1), event.to_bytes(), create_only=True)
    return seq + 1


@pytest.fixture
def location(tmp_path: Path) -> str:
    location = str(tmp_path / "reg")
    reg = Registry.open(location)
    reg.register("m", b"model", fmt="bytes", operation_key="k1")
    reg.promote("m", 1, "staging", reason="ok")
    reg.flush()
    return location


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_reads_fail_with_a_typed_error_naming_the_event(location: str, damage: str) -> None:
    seq = append_raw(location, *DAMAGE[damage])
    reg = Registry.open(location)  # a fresh process's view: nothing remembered
    before = snapshot(reg)
    for read in (
        lambda: reg.state("m"),
        lambda: reg.history("m"),
        lambda: reg.resolve("m@staging"),
        lambda: reg.promote("m", 1, "production", reason="go"),
    ):
        with pytest.raises(MalformedEvent, match=f"event {seq} of m") as info:
            read()
        assert info.value.seq == seq and info.value.model == "m"
    assert snapshot(reg) == before


def test_verify_reports_it_and_repair_says_what_a_person_must_do(location: str, capsys) -> None:
    seq = append_raw(location, *DAMAGE["stage change without its target"])
    key = keys.event_key("m", seq)
    report = verify(Registry.open(location), "m")
    assert [(f.kind, f.key) for f in report.findings if f.severity == "error"] == [("event_malformed", key)]
    before = snapshot(Registry.open(location))
    code, out, err = pmr(capsys, "--registry", location, "verify", "--repair", "--apply")
    assert code == 0 and "needs a person" in out and key in out and "backup" in out, out + err
    assert snapshot(Registry.open(location)) == before  # history is never rewritten
    code, _, err = pmr(capsys, "--registry", location, "history", "m")
    assert code == 1 and f"event {seq} of m" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "report",
    [
        {"gate": "g", "passed": False, "checks": 5},
        {"gate": "g", "passed": False, "checks": "abc"},
        {"gate": "g", "passed": False, "checks": [1, 2]},
        {"gate": "g", "passed": "false", "checks": []},
        {"gate": "g", "passed": False, "advisory": "no", "checks": []},
    ],
    ids=["checks-int", "checks-str", "checks-not-objects", "passed-str", "advisory-str"],
)
def test_a_malformed_report_is_refused(location: str, report: dict[str, Any]) -> None:
    reg = Registry.open(location)
    before = snapshot(reg)
    with pytest.raises(InvalidMetadata, match="report"):
        reg.record_report("m", 1, "g", report, passed=False)
    with pytest.raises(InvalidMetadata, match="report"):
        reg.register("m", b"other", VersionInfo(reports={"g": report}), fmt="bytes")
    assert snapshot(reg) == before


reports = st.dictionaries(
    st.sampled_from(["gate", "passed", "advisory", "checks", "summary"]),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
        max_leaves=6,
    ),
)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(report=reports, passed=st.booleans())
def test_record_report_fuzzed_raises_only_typed_errors(location: str, report: dict[str, Any], passed: bool) -> None:
    reg = Registry.open(location)
    try:
        reg.record_report("m", 1, "fuzz", report, passed=passed)
    except RegistryError:
        pass
