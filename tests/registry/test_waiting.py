"""What waits for a reviewer (issue 31): one definition, ``Registry.waiting``, shared with ``pmr pending``.

A rejected or gate-blocked version is never listed, whatever holds it (a staged version, a paused run); an
approvable staged version is, with its evidence: gate verdicts, metrics and deltas against production, the
``pmr approve`` line. ``pmr models`` marks blocked versions instead of showing them as plain staging.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from prefect_model_registry.flows.cli import main as flows_main
from prefect_model_registry.flows.cli import reviews
from prefect_model_registry.registry import (
    ApprovalRules,
    GateVerdict,
    ModelNotFound,
    PausedRun,
    Registry,
    VersionInfo,
    WaitingVersion,
)


def _report(gate: str, passed: bool, *, advisory: bool = False, failing: str = "") -> dict[str, Any]:
    checks = [{"name": "rows >= 100", "passed": True, "expected": ">= 100", "observed": "569"}]
    if failing:
        checks.append({"name": failing, "passed": False, "expected": "<= 0.1", "observed": "0.4"})
    return {"gate": gate, "passed": passed, "checks": checks, "summary": {}} | ({"advisory": True} if advisory else {})


def _version(reg: Registry, roc_auc: float, reports: dict[str, dict[str, Any]] | None = None) -> int:
    info = VersionInfo(metrics={"roc_auc": roc_auc, "accuracy": roc_auc - 0.05}, reports=reports or {})
    mv = reg.register("m", b"model %f" % roc_auc, info, fmt="bytes", actor="lee")
    return mv.version


def _build(reg: Registry) -> None:
    """v1 production; v2 staged and approvable; v3 staged then rejected; v4 staged with a failed blocking gate;
    v5 staged and approved already; v6 registered only. The policy protects production."""
    one = _version(reg, 0.90, {"data_quality": _report("data_quality", True)})
    reg.promote("m", one, "production", reason="first", through_staging=True)
    reg.set_policy("m", ApprovalRules(), reason="production needs a reviewer")
    reports = {
        "data_quality": _report("data_quality", True),
        "drift": _report("drift", False, advisory=True, failing="psi(mean radius)"),
        "sweep": {"gate": "sweep", "passed": True, "checks": [], "summary": {}},
    }
    two = _version(reg, 0.93, reports)
    three = _version(reg, 0.95)
    four = _version(reg, 0.97, {"data_quality": _report("data_quality", False, failing="nulls(mean radius)")})
    five = _version(reg, 0.91)
    _version(reg, 0.92)
    for v in (two, three, four, five):
        reg.promote("m", v, "staging", reason="gates ran")
    reg.record_decision("m", three, approved=False, reviewer="dana", comment="leaks the label")
    reg.record_decision("m", five, approved=True, reviewer="dana", comment="fine")
    assert (two, three, four, five) == (2, 3, 4, 5)
    assert reg.state("m").blocked == {3: ["rejected"], 4: ["gate:data_quality"]}


def test_only_an_approvable_staged_version_waits_with_its_evidence(reg: Registry) -> None:
    _build(reg)
    (waiting,) = reg.waiting()
    assert isinstance(waiting, WaitingVersion)
    assert (waiting.model, waiting.version, waiting.stage, waiting.current_stage) == ("m", 2, "production", "staging")
    assert waiting.waiting == "registry" and waiting.run is None
    assert waiting.gates == [
        GateVerdict(gate="data_quality", passed=True, blocking=True, summary="passed (1 check)"),
        GateVerdict(
            gate="drift",
            passed=False,
            blocking=False,
            summary="FAILED: 1 of 2 checks: psi(mean radius): observed 0.4 (advisory)",
        ),
    ]  # the sweep is not a gate
    assert waiting.production == 1 and waiting.production_metrics == {"roc_auc": 0.90, "accuracy": 0.90 - 0.05}
    assert waiting.metrics == {"roc_auc": 0.93, "accuracy": 0.93 - 0.05}
    assert waiting.deltas is not None and waiting.deltas.keys() == {"accuracy", "roc_auc"}
    assert waiting.deltas["roc_auc"] == pytest.approx(0.03)
    assert waiting.approve == 'pmr approve m 2 --stage production --comment "..."'
    assert reg.waiting("m") == [waiting]


def test_a_paused_run_of_a_rejected_or_blocked_version_is_not_listed(reg: Registry, monkeypatch) -> None:
    _build(reg)
    monkeypatch.setenv("PMR_PREFECT_UI_URL", "http://127.0.0.1:4200/")
    paused = [
        PausedRun(model="m", version=v, stage="production", run_id=f"run-{v}", run=f"brave-{v}") for v in (2, 3, 4, 6)
    ]
    found = reg.waiting("m", paused=paused)
    assert [(w.version, w.waiting) for w in found] == [(2, "run"), (6, "run")]  # never v3 (rejected), v4 (gate)
    held = found[0].run
    assert held is not None and held.url == "http://127.0.0.1:4200/runs/flow-run/run-2"
    assert found[1].current_stage == "none" and found[1].deltas == {
        "accuracy": pytest.approx(0.02),
        "roc_auc": pytest.approx(0.02),
    }
    # A paused run of a model this registry does not hold is kept (nothing here says it is blocked), bare.
    other = PausedRun(model="elsewhere", version=1, stage="production", run_id="r", url="http://ui/r")
    (bare,) = [w for w in reg.waiting(paused=[other]) if w.model == "elsewhere"]
    assert bare.gates == [] and bare.production is None and bare.run == other
    with pytest.raises(ModelNotFound):
        reg.waiting("nope")


def test_a_model_without_a_policy_has_nothing_waiting(reg: Registry) -> None:
    _version(reg, 0.9)
    reg.promote("m", 1, "staging", reason="gates ran")
    assert reg.waiting() == []


def _pmr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        flows_main(list(args))
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out + captured.err


def test_pmr_pending_lists_the_same_with_the_evidence(location: str, capsys, monkeypatch) -> None:
    reg = Registry.open(location)
    _build(reg)
    monkeypatch.setattr(reviews, "waiting_runs", lambda name=None: [])
    code, out = _pmr(capsys, "--registry", location, "pending")
    assert code == 0, out
    lines = out.splitlines()
    assert not [line for line in lines if line.startswith(("m v3", "m v4", "m v5", "m v6"))], out
    assert lines[0] == "m v2 -> production: staging, needs an approval (no run waits)"
    assert "✓ data_quality: passed (1 check)" in out and "✗ drift: FAILED: 1 of 2 checks" in out
    assert (
        "metrics vs production v1: accuracy=0.88 (production 0.85, +0.03), roc_auc=0.93 (production 0.9, +0.03)" in out
    )
    assert 'pmr approve m 2 --stage production --comment "..."' in out
    code, out = _pmr(capsys, "--registry", location, "--json", "pending", "m")
    (row,) = json.loads(out)
    assert code == 0 and (row["model"], row["version"], row["stage"], row["waiting"]) == (
        "m",
        2,
        "production",
        "registry",
    )
    assert [g["gate"] for g in row["gates"]] == ["data_quality", "drift"]
    assert row["production"] == 1 and row["deltas"]["roc_auc"] == pytest.approx(0.03)
    assert row["approve"].startswith("pmr approve m 2")


def test_pmr_pending_drops_a_paused_run_the_registry_blocks(location: str, capsys, monkeypatch) -> None:
    reg = Registry.open(location)
    _build(reg)
    runs = [
        {"model": "m", "version": v, "stage": "production", "run_id": f"id-{v}", "run": f"run-{v}"}
        | {"since": "2026-12-06T07:00:00+00:00"}
        | {"url": f"http://prefect.example/runs/flow-run/id-{v}"}
        for v in (2, 3, 4)
    ]
    monkeypatch.setattr(reviews, "waiting_runs", lambda name=None: runs)
    code, out = _pmr(capsys, "--registry", location, "pending")
    assert code == 0 and "run-3" not in out and "run-4" not in out and "m v3" not in out and "m v4" not in out, out
    assert out.splitlines()[0] == "m v2 -> production: run run-2 paused since 2026-12-06T07:00:00"
    assert "resume in the Prefect UI: http://prefect.example/runs/flow-run/id-2" in out
    code, out = _pmr(capsys, "--registry", location, "--json", "pending")
    (row,) = json.loads(out)
    assert (row["version"], row["waiting"], row["run_id"], row["run"]) == (2, "run", "id-2", "run-2")
    assert row["url"] == "http://prefect.example/runs/flow-run/id-2" and row["gates"]


def test_pmr_models_marks_blocked_versions(location: str, capsys) -> None:
    reg = Registry.open(location)
    _build(reg)
    code, out = _pmr(capsys, "--registry", location, "models")
    assert code == 0 and "2, 3 (blocked: rejected), 4 (blocked: gate:data_quality), 5" in out, out
    code, out = _pmr(capsys, "--registry", location, "--json", "models")
    (row,) = json.loads(out)
    assert row["staging"] == [2, 3, 4, 5] and row["blocked"] == {"3": ["rejected"], "4": ["gate:data_quality"]}
