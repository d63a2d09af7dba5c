"""Registry changes made outside the flows (``pmr``, the Python API) reach Prefect as ``model.*`` events."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from prefect_model_registry.flows.core.events import prefect_events
from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.models import Event
from tests.flows.conftest import model_events

ROOT = Path(__file__).resolve().parents[2]


def _event(kind: str, version: int | None, **data: object) -> Event:
    return Event(
        seq=7, type=kind, model="m", version=version, actor="ann", at=datetime.now(UTC), data=data, prev_hash="0" * 64
    )


def test_every_lifecycle_event_maps_to_its_prefect_names() -> None:
    names = lambda e: [(n, v) for n, v, _ in prefect_events(e)]  # noqa: E731
    assert names(_event("registered", 3, failed_gates=[])) == [("model.registered", 3)]
    assert names(_event("registered", 3, failed_gates=["thresholds"])) == [
        ("model.registered", 3),
        ("model.gate-failed", 3),
    ]
    assert names(_event("stage_changed", 3, to="production", archived=[2])) == [
        ("model.promoted", 3),
        ("model.archived", 2),
    ]
    assert names(_event("stage_changed", 3, to="archived", archived=[])) == [("model.archived", 3)]
    assert names(_event("break_glass", 3, to="production", archived=[])) == [
        ("model.promoted", 3),
        ("model.break-glass", 3),
    ]
    assert names(_event("rolled_back", 1, **{"from": 2, "to": 1})) == [("model.rolled-back", 1)]
    assert names(_event("validated", 3, gate="thresholds", passed=True)) == []
    assert names(_event("validated", 3, gate="thresholds", passed=False)) == [("model.gate-failed", 3)]
    payload = prefect_events(_event("rolled_back", 1, **{"from": 2, "to": 1}))[0][2]
    assert payload["from"] == 2 and payload["to"] == 1 and payload["actor"] == "ann"


def test_silent_and_prefect_free_without_an_api(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    script = f"""
import sys
import prefect_model_registry.flows  # registers the Prefect sink
from prefect_model_registry.registry import Registry
reg = Registry.open({str(tmp_path / "reg")!r})
for v in (1, 2):
    reg.register("m", b"x%d" % v, fmt="bytes")
    reg.promote("m", v, "staging", reason="s")
    reg.promote("m", v, "production", reason="p")
reg.rollback("m", reason="r")
assert "prefect" not in sys.modules, "the sink imported Prefect with no API configured"
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
    assert done.stderr == ""


@pytest.mark.usefixtures("prefect_api")
def test_api_and_cli_changes_emit_model_events(tmp_path: Path, model_name: str) -> None:
    from prefect.settings import PREFECT_API_URL

    location = str(tmp_path / "registry")
    reg = Registry.open(location)
    for v in (1, 2):
        reg.register(model_name, b"model %d" % v, fmt="bytes")
        reg.promote(model_name, v, "staging", reason="s")
    reg.promote(model_name, 1, "production", reason="first")
    reg.promote(model_name, 2, "production", reason="second")  # a direct API call, no flow
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefect_model_registry.flows.cli",
            "--registry",
            location,
            "rollback",
            model_name,
            "--reason",
            "bad",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    want = {"model.registered", "model.promoted", "model.archived", "model.rolled-back"}
    assert want <= model_events(model_name, want)
