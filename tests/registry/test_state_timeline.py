"""The stage/alias timeline kept with the snapshot: equal to a full replay, never used when it does not add up."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.core import background, keys
from prefect_model_registry.registry.core.log import ModelLog
from prefect_model_registry.registry.core.replay import apply_event
from prefect_model_registry.registry.dashboard import views
from prefect_model_registry.registry.dashboard.app import create_app
from prefect_model_registry.registry.maintenance.verify import verify
from prefect_model_registry.registry.models import ModelState, sha256
from tests.registry.test_dashboard import BASE, PORT, build, text


def full_replay(reg: Registry, name: str) -> ModelState:
    state = ModelState(name=name)
    for event in reg.history(name):
        state = apply_event(state, event, sha256(reg.store.get(keys.event_key(name, event.seq)).data))
    return state


def periods(line: views.Timeline | None) -> list[tuple[str, str, int, str, str | None, str]]:
    assert line is not None
    return [
        (p.kind, p.label, p.version, p.start.isoformat(), p.end.isoformat() if p.end else None, p.started_by)
        for p in line.periods
    ]


def stored(reg: Registry, name: str) -> ModelState:
    return ModelState.model_validate_json(reg.store.get(keys.state_key(name)).data)


def test_snapshot_timeline_equals_a_full_replay(location: str) -> None:
    reg = Registry.open(location)
    build(reg)  # promotions through staging, a rollback, a rejection, alias moves
    ModelLog(reg.store, "churn").refresh_snapshot()
    snap = stored(reg, "churn")
    replayed = full_replay(reg, "churn")
    assert snap.timeline == replayed.timeline and len(snap.timeline) >= 6
    assert periods(views.state_timeline(snap)) == periods(views.timeline(reg.history("churn")))
    # Events after the snapshot: a fresh reader (no process memory) catches up and has the whole timeline.
    reg.promote("churn", 2, "production", actor="alice", reason="again", through_staging=True)
    reg.remove_alias("churn", "champion", actor="alice", reason="retired")
    reg.set_alias("churn", "challenger", 4, actor="bob", reason="try")
    background.flush()
    fresh = Registry.open(location)
    state = fresh.state("churn")
    assert stored(fresh, "churn").seq < state.seq or state.seq == stored(fresh, "churn").seq
    assert state.timeline == full_replay(fresh, "churn").timeline
    got = periods(views.state_timeline(state))
    assert got == periods(views.timeline(fresh.history("churn")))
    assert ("alias", "challenger", 4) in {(k, label, v) for k, label, v, *_ in got}
    assert verify(fresh, "churn").ok


def test_model_page_reads_the_timeline_and_one_page_of_events(location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = Registry.open(location)
    build(reg)
    ModelLog(reg.store, "churn").refresh_snapshot()

    def no_history(self: Registry, name: str) -> object:
        raise AssertionError("the whole log was read")

    monkeypatch.setattr(Registry, "history", no_history)
    with TestClient(create_app(location, bound_host="127.0.0.1", port=PORT), base_url=BASE) as client:
        page = client.get("/models/churn")
        assert page.status_code == 200, page.text[:1000]
        timeline = text(page.text[page.text.index('id="timeline-table"') : page.text.index("Approval policy")])
        assert "production v1" in timeline and "champion v2" in timeline


def test_a_tampered_snapshot_timeline_is_not_used_and_verify_reports_it(location: str) -> None:
    reg = Registry.open(location)
    build(reg)
    ModelLog(reg.store, "churn").refresh_snapshot()
    expected = periods(views.timeline(reg.history("churn")))
    raw = json.loads(reg.store.get(keys.state_key("churn")).data)
    first = raw["timeline"][0]
    assert first["start"] == [["stage", "production", 1]]
    first["start"] = [["stage", "production", 4]]  # v4 never was in production; head_hash and the rest untouched
    reg.store.put(keys.state_key("churn"), json.dumps(raw).encode())

    fresh = Registry.open(location)
    assert views.state_timeline(fresh.state("churn")) is None  # it does not add up: not used
    with TestClient(create_app(location, bound_host="127.0.0.1", port=PORT), base_url=BASE) as client:
        page = client.get("/models/churn").text
    timeline = text(page[page.index('id="timeline-table"') : page.index("Approval policy")])
    assert "production v4" not in timeline and "production v1" in timeline
    line, *_ = views.model_log(fresh, "churn", fresh.state("churn"), 1, event_type=None, actor=None)
    assert periods(line) == expected

    report = verify(Registry.open(location), "churn")
    found = [f for f in report.findings if f.kind == "snapshot_altered"]
    assert found and "timeline" in found[0].problem


def test_a_self_consistent_tampered_timeline_is_reported_by_verify(location: str) -> None:
    reg = Registry.open(location)
    build(reg)
    ModelLog(reg.store, "churn").refresh_snapshot()
    raw = json.loads(reg.store.get(keys.state_key("churn")).data)
    raw["timeline"][0]["actor"] = "mallory"  # adds up, so a reader shows it: verify is what catches it
    reg.store.put(keys.state_key("churn"), json.dumps(raw).encode())
    report = verify(Registry.open(location), "churn")
    assert any(f.kind == "snapshot_altered" and "timeline" in f.problem for f in report.findings)
