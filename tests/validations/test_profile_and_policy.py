"""`pmr suite init`'s profiler and the gate policy, as plain functions (no Prefect)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from prefect_model_registry.validations import data_quality, policy, thresholds
from prefect_model_registry.validations.report import CheckResult, GateReport

CHURN = Path(__file__).resolve().parents[2] / "flows" / "data" / "churn.csv"


def _init(tmp_path: Path, data: Path, target: str) -> tuple[Path, Path]:
    from typer.testing import CliRunner

    from prefect_model_registry.flows.cli import app

    out = tmp_path / "suites" / "mine.yaml"
    result = CliRunner().invoke(app, ["suite", "init", str(data), "--target", target, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out, out.with_name("mine.thresholds.yaml")


def test_suite_init_writes_a_strict_suite_its_data_passes_and_a_corrupted_copy_fails(tmp_path: Path) -> None:
    suite_file, thresholds_file = _init(tmp_path, CHURN, "churned")
    spec = yaml.safe_load(suite_file.read_text())
    loaded = data_quality.load_suite(suite_file)  # strict: raises if GX would drop an expectation
    assert len(loaded.expectations) == len(spec["expectations"]) > 20
    kinds = {e["type"] for e in spec["expectations"]}
    assert {
        "expect_table_columns_to_match_set",
        "expect_table_row_count_to_be_between",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_null",
    } <= kinds
    frame = pd.read_csv(CHURN)
    assert data_quality.validate_dataframe(frame, suite_file).passed

    corrupted = frame.copy()
    corrupted.loc[:40, "contract_type"] = "lifetime"  # a category never seen
    corrupted.loc[:40, "tenure_months"] = -5  # out of range
    corrupted.loc[: len(frame) // 3, "monthly_charges"] = None  # far more gaps than profiled
    report = data_quality.validate_dataframe(corrupted, suite_file)
    failed = {c.details.get("kwargs", {}).get("column") for c in report.failed_checks}
    assert not report.passed and {"contract_type", "tenure_months", "monthly_charges"} <= failed
    dropped = data_quality.validate_dataframe(frame.drop(columns=["payment_method"]), suite_file)
    assert not dropped.passed

    starter = thresholds.load_thresholds(thresholds_file)
    assert set(starter.absolute) == {"accuracy", "roc_auc"}
    assert starter.absolute["accuracy"].min == pytest.approx(1 - frame["churned"].mean(), abs=0.01)


def test_suite_init_for_a_regression_target_starts_from_r2(tmp_path: Path) -> None:
    from sklearn.datasets import load_diabetes

    path = tmp_path / "diabetes.csv"
    load_diabetes(as_frame=True).frame.to_csv(path, index=False)
    suite_file, thresholds_file = _init(tmp_path, path, "target")
    assert data_quality.validate_dataframe(pd.read_csv(path), suite_file).passed
    assert set(thresholds.load_thresholds(thresholds_file).absolute) == {"r2"}


def test_suite_init_refuses_to_overwrite(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from prefect_model_registry.flows.cli import app

    out = tmp_path / "s.yaml"
    out.write_text("mine")
    result = CliRunner().invoke(app, ["suite", "init", str(CHURN), "--target", "churned", "-o", str(out)])
    assert result.exit_code == 2 and out.read_text() == "mine"


def _report(gate: str, passed: bool) -> GateReport:
    return GateReport(gate=gate, passed=passed, checks=(CheckResult("c", passed, "e", "o"),))


def test_policy_decides_which_failures_block() -> None:
    reports = {g: _report(g, g != "drift") for g in ("data_quality", "drift", "thresholds")}
    default = policy.GatePolicy()
    assert policy.decide(default, reports).passed
    assert policy.decide(default, reports).advisory_failures == ("drift",)
    strict = policy.GatePolicy(advisory=[])
    assert policy.decide(strict, reports).blocking == ("drift",)
    stored = policy.manifest_reports(default, reports)
    assert stored["drift"]["advisory"] is True and "advisory" not in stored["thresholds"]
    lenient = policy.GatePolicy(advisory=["thresholds"])
    assert policy.decide(lenient, {"thresholds": _report("thresholds", False)}).passed
    with pytest.raises(ValueError):
        policy.GatePolicy(advisory=["data_quality"])  # data quality always blocks
    assert policy.stage_path("staging") == ("staging",)
    assert policy.stage_path("production") == ("staging", "production")


def test_an_undefined_metric_is_a_failed_gate_with_a_reason() -> None:
    report = policy.metrics_report({"accuracy": 0.9, "roc_auc": math.nan})
    assert not report.passed and report.summary["undefined"] == ["roc_auc"]
    assert "single class" in report.failed_checks[0].observed
    assert policy.finite_metrics({"accuracy": 0.9, "roc_auc": math.nan}) == {"accuracy": 0.9}
    stored = policy.manifest_reports(policy.GatePolicy(), {"metrics": report})
    assert "NaN" in str(stored)  # strict JSON: the manifest never holds a float NaN


def test_the_sweep_picks_the_best_defined_candidate() -> None:
    from prefect_model_registry.validations import sweep

    scored = [({"C": 1}, {"roc_auc": 0.8}), ({"C": 2}, {"roc_auc": math.nan}), ({"C": 3}, {"roc_auc": 0.9})]
    best, report = sweep.choose(scored, "roc_auc", None, 1e-9)
    assert best == 2 and report.summary["best"] == 3 and report.summary["decided_by"] == "roc_auc"
    best, _ = sweep.choose([({}, {"rmse": 3.0}), ({}, {"rmse": 2.0})], "rmse", None, 1e-9)
    assert best == 1  # lower is better
