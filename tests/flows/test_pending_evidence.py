"""``pmr pending`` with a real paused run (issue 31): its evidence and link, and never a version the registry blocks.

A retraining run pauses for a decision on v2: ``pmr pending`` lists it with its gates, its metrics against v1's
and the run's page built from ``PMR_PREFECT_UI_URL``. Once the registry holds a rejection of v2 (recorded with no
run in the way), the run still waits in Prefect, but ``pmr pending`` no longer lists it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefect_model_registry.flows.core.approval import ApprovalPolicy
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.pipeline import retrain
from prefect_model_registry.registry import Registry
from tests.flows.conftest import BATCH1, BATCH2, Background, wait_for_paused

pytestmark = pytest.mark.usefixtures("prefect_api")


def _pmr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from prefect_model_registry.flows.cli import main

    with pytest.raises(SystemExit) as info:
        main(list(args))
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out + out.err


def test_pending_shows_a_paused_runs_evidence_and_drops_it_once_rejected(
    tmp_path: Path, model_name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    location = str(tmp_path / "registry")
    name = model_name
    first = retrain(
        RetrainConfig(model_name=name, dataset_uri=BATCH1, registry=location, approval=ApprovalPolicy(required_for=[])),
        return_state=True,
    )
    assert first.is_completed(), first.message
    policy = ApprovalPolicy(poll_interval_seconds=1, timeout_seconds=120)
    run = Background(
        retrain, config=RetrainConfig(model_name=name, dataset_uri=BATCH2, registry=location, approval=policy)
    )
    paused = wait_for_paused(name)
    monkeypatch.setenv("PMR_PREFECT_UI_URL", "http://ui.example:4200")
    code, out = _pmr(capsys, "--registry", location, "--json", "pending", name)
    (row,) = json.loads(out)
    assert code == 0 and (row["version"], row["stage"], row["waiting"]) == (2, "production", "run"), out
    assert row["run_id"] == str(paused.id) and row["url"] == f"http://ui.example:4200/runs/flow-run/{paused.id}"
    gates = {g["gate"]: g for g in row["gates"]}
    assert gates["data_quality"]["passed"] and "sweep" not in gates and "drift_reference" not in gates
    assert row["production"] == 1 and set(row["deltas"]) == set(row["metrics"]) and row["deltas"]
    code, out = _pmr(capsys, "--registry", location, "pending", name)
    assert code == 0 and out.startswith(f"{name} v2 -> production: run {paused.name} paused since "), out
    assert f"resume in the Prefect UI: http://ui.example:4200/runs/flow-run/{paused.id}" in out
    assert "metrics vs production v1: " in out and f"pmr approve {name} 2 --stage production" in out

    reg = Registry.open(location)
    reg.record_decision(name, 2, approved=False, reviewer="erin", comment="rejected outside the run")
    code, out = _pmr(capsys, "--registry", location, "pending", name)
    assert code == 0 and out.strip() == "nothing waits for a decision", out
    code, out = _pmr(capsys, "--registry", location, "--json", "pending")
    assert code == 0 and [r for r in json.loads(out) if r.get("model") == name] == [], out
    # The run still waits in Prefect: a decision ends it.
    code, out = _pmr(capsys, "--registry", location, "--actor", "erin", "reject", name, "2", "--comment", "done")
    assert code == 0, out
    assert run.join().is_failed()
