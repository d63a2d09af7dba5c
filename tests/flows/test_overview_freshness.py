"""The ``registry-overview`` artifact follows the registry without a flow run (issue 31), off the writer's path;
the model card and the approval dialog link to the version's dashboard page when ``PMR_DASHBOARD_URL`` is set."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from prefect_model_registry.flows.core import freshness
from prefect_model_registry.flows.core.evidence import approval_description, as_of, dashboard_link, model_card
from prefect_model_registry.flows.core.publish import OVERVIEW_KEY
from prefect_model_registry.registry import Registry, hooks
from prefect_model_registry.registry.models import ArtifactRef, ModelVersion
from tests.conftest import BUCKET

ROOT = Path(__file__).resolve().parents[2]


def _two_in_production(reg: Registry, name: str) -> None:
    for v in (1, 2):
        reg.register(name, b"model %d" % v, fmt="bytes")
        reg.promote(name, v, "staging", reason="s")
        reg.promote(name, v, "production", reason="p")


class SlowPublish:
    """A stand-in for the Prefect publish: slow, and noting the thread and what it saw."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls: list[tuple[int, Any]] = []

    def __call__(self, reg: Registry) -> None:
        time.sleep(self.seconds)
        self.calls.append((threading.get_ident(), reg.overview()))


@pytest.fixture
def refresher(request: pytest.FixtureRequest) -> Iterator[tuple[freshness.OverviewRefresher, SlowPublish]]:
    fake = SlowPublish(getattr(request, "param", 1.0))
    refresher = freshness.OverviewRefresher(interval_s=1.0, publish=fake, wanted=lambda: True)
    hooks.add_store_listener(refresher)
    try:
        yield refresher, fake
    finally:
        hooks.remove_store_listener(refresher)
        refresher.flush(10)


def test_the_write_returns_without_waiting_and_events_are_coalesced(
    tmp_path: Path, refresher: tuple[freshness.OverviewRefresher, SlowPublish]
) -> None:
    ref, fake = refresher
    reg = Registry.open(tmp_path / "reg")
    _two_in_production(reg, "m")  # 6 events: the first refreshes at once, the rest wait their turn
    started = time.monotonic()
    reg.rollback("m", reason="bad")
    assert time.monotonic() - started < 0.9  # the publish takes 1 s: the rollback did not wait for it
    assert ref.flush(15)
    assert all(ident != threading.get_ident() for ident, _ in fake.calls)  # on the refresher's thread
    assert 1 <= len(fake.calls) <= 3, len(fake.calls)  # 7 events, at most one refresh a second
    last = fake.calls[-1][1][0]
    assert (last["production"], last["seq"]) == (1, 7)  # the newest refresh saw the rollback


def test_a_failing_publish_never_fails_the_write(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def broken(reg: Registry) -> None:
        raise RuntimeError("API down")

    ref = freshness.OverviewRefresher(interval_s=0.0, publish=broken, wanted=lambda: True)
    hooks.add_store_listener(ref)
    try:
        reg = Registry.open(tmp_path / "reg")
        with caplog.at_level("DEBUG", logger=freshness.__name__):
            _two_in_production(reg, "m")
            reg.rollback("m", reason="bad")
            assert ref.flush(10)
    finally:
        hooks.remove_store_listener(ref)
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "not refreshed" in r.getMessage()]
    assert len(warnings) == 1 and "API down" in warnings[0].getMessage()  # once; later failures at debug
    assert reg.state("m").production == 1 and ref.refreshes == 0


def test_no_api_no_refresh(tmp_path: Path) -> None:
    ref = freshness.OverviewRefresher(publish=SlowPublish(0), wanted=lambda: False)
    hooks.add_store_listener(ref)
    try:
        _two_in_production(Registry.open(tmp_path / "reg"), "m")
    finally:
        hooks.remove_store_listener(ref)
    assert ref._thread is None and ref.flush(0)


def test_the_dashboard_is_linked_when_its_address_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    mv = ModelVersion(
        name="churn.v2",
        version=3,
        artifact=ArtifactRef(sha256="a" * 64, size=10, format="skops", key="blobs/sha256/" + "a" * 64),
        created_by="ann",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    monkeypatch.delenv("PMR_DASHBOARD_URL", raising=False)
    assert dashboard_link("churn", 3) is None
    assert "Dashboard" not in model_card(mv, {}, "staging") and "Dashboard" not in approval_description(mv, {}, {})
    monkeypatch.setenv("PMR_DASHBOARD_URL", "http://127.0.0.1:8000/pmr(team)/")
    page = "http://127.0.0.1:8000/pmr%28team%29/models/churn.v2/versions/3"
    assert dashboard_link("churn.v2", 3) == page
    assert f"**Dashboard:** [churn.v2 v3]({page})" in model_card(mv, {}, "staging")
    assert f"- [Dashboard]({page})" in approval_description(mv, {}, {"Model card": "artifact `x`"})


def _latest_overview(uri: str) -> Any:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[OVERVIEW_KEY])),
            sort=ArtifactSort.CREATED_DESC,
            limit=20,
        )
    return next((a for a in found if f"Models in {uri}," in (a.description or "")), None)


def _wait_for_overview(uri: str, want: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        artifact = _latest_overview(uri)
        if (artifact is not None and want in (artifact.description or "")) or time.monotonic() > deadline:
            return artifact
        time.sleep(0.3)


@pytest.mark.usefixtures("prefect_api")
def test_a_rollback_outside_any_run_refreshes_the_overview(tmp_path: Path, model_name: str) -> None:
    import json

    reg = Registry.open(tmp_path / "registry")
    _two_in_production(reg, model_name)
    started = time.monotonic()
    event = reg.rollback(model_name, reason="bad")
    assert time.monotonic() - started < 2.0  # no Prefect round trip on the writer's path
    newest = reg.state(model_name).updated_at
    want = as_of(7, newest)
    artifact = _wait_for_overview(reg.store.uri, want, timeout=20)  # at most one refresh every 5 s
    assert artifact is not None and want in artifact.description, artifact and artifact.description
    assert artifact.flow_run_id is None and event.seq == 7
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    (row,) = [r for r in rows if r["model"] == model_name]
    assert (row["production"], row["events"]) == ("v1", 7)


@pytest.mark.usefixtures("prefect_api")
def test_pmr_rollback_from_a_terminal_refreshes_it_before_exiting(tmp_path: Path, model_name: str) -> None:
    from prefect.settings import PREFECT_API_URL

    location = str(tmp_path / "registry")
    reg = Registry.open(location)
    _two_in_production(reg, model_name)
    assert freshness.REFRESHER.flush(15)  # this process's own refreshes are done: the next one is the CLI's
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "prefect_model_registry.flows.cli", "--registry", location]
    done = subprocess.run(
        [*cli, "rollback", model_name, "--reason", "bad"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""
    want = as_of(7, reg.state(model_name).updated_at)
    artifact = _latest_overview(reg.store.uri)  # no waiting: the CLI refreshed it before it exited
    assert artifact is not None and want in artifact.description, artifact and artifact.description
    assert f"'{model_name}', 'latest': 2, 'production': 'v1'" in str(artifact.data) or '"production": "v1"' in str(
        artifact.data
    )


def test_refreshes_of_many_registries_leave_no_connection_open(s3_server: Any) -> None:
    """A process writing to many S3 registries (a test session, a multi-tenant service) keeps no socket per one.

    A refresher that kept a registry per location held each store's connections open in its threads: a test
    session ran out of file descriptors below select()'s 1024 after a few hundred registries.
    """

    def publish(reg: Registry) -> None:
        reg.overview()  # reads through the writer's store, in the refresher's thread and the read pool's

    ref = freshness.OverviewRefresher(interval_s=0.0, publish=publish, wanted=lambda: True)
    # The process's own refresher (publishing to the session's Prefect API, at most every 5 s) holds the stores it
    # has yet to refresh: it is left out, so the count below is this refresher's alone.
    hooks.remove_store_listener(freshness.REFRESHER)
    freshness.REFRESHER.flush(10)
    hooks.add_store_listener(ref)
    try:
        gc.collect()
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(40):
            reg = Registry.open(f"s3://{BUCKET}/{uuid.uuid4().hex}")
            reg.register("m", b"bytes", fmt="bytes")
            reg.flush()
            assert ref.flush(10)
            del reg
        gc.collect()
        after = len(os.listdir("/proc/self/fd"))
    finally:
        hooks.remove_store_listener(ref)
        hooks.add_store_listener(freshness.REFRESHER)
    assert ref.refreshes >= 40
    assert after - before < 20, (before, after)
