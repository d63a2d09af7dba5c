"""Threshold gate: every rule kind, on metrics of real trained models, plus config errors."""

from __future__ import annotations

import math

import pytest

from prefect_model_registry.validations import (
    ThresholdConfig,
    ThresholdConfigError,
    UnknownMetricError,
    check_thresholds,
    evaluate,
    load_thresholds,
    thresholds_path,
)


@pytest.fixture(scope="module")
def lr_metrics(lr_model, bc_split):
    return evaluate(lr_model, bc_split.X_test, bc_split.y_test)


@pytest.fixture(scope="module")
def stump_metrics(stump_model, bc_split):
    return evaluate(stump_model, bc_split.X_test, bc_split.y_test)


def _cfg(**data) -> ThresholdConfig:
    return ThresholdConfig.from_dict(data)


def test_bundled_config_loads_by_name_and_path():
    by_name = load_thresholds("breast_cancer")
    by_path = load_thresholds(thresholds_path("breast_cancer"))
    assert by_name.absolute == by_path.absolute and by_name.relative == by_path.relative
    assert by_name.absolute["accuracy"].min == 0.9 and by_name.absolute["log_loss"].max == 0.3
    assert by_name.relative["roc_auc"].max_drop == 0.005
    assert ThresholdConfig.from_dict(by_name.to_dict()).absolute == by_name.absolute


def test_logistic_regression_passes_bundled_thresholds(lr_metrics):
    report = check_thresholds(lr_metrics, load_thresholds("breast_cancer"))
    assert report.passed, report.to_markdown()
    assert report.gate == "thresholds"
    assert report.check("accuracy >= 0.9").observed == f"{lr_metrics['accuracy']:.4g}"


def test_stump_fails_the_floors_and_ceiling(stump_metrics):
    report = check_thresholds(stump_metrics, load_thresholds("breast_cancer"))
    assert not report.passed
    failed = {c.name for c in report.failed_checks}
    assert failed == {"accuracy >= 0.9", "roc_auc >= 0.95", "log_loss <= 0.3"}


def test_min_and_max_on_the_same_metric():
    cfg = _cfg(absolute={"r2": {"min": 0.5, "max": 0.99}})
    assert check_thresholds({"r2": 0.7}, cfg).passed
    low, high = check_thresholds({"r2": 0.4}, cfg), check_thresholds({"r2": 0.999}, cfg)
    assert [c.name for c in low.failed_checks] == ["r2 >= 0.5"]
    assert [c.name for c in high.failed_checks] == ["r2 <= 0.99"]
    assert check_thresholds({"r2": 0.5}, cfg).passed  # bounds are inclusive


@pytest.mark.parametrize(
    ("value", "observed"),
    [(float("nan"), "NaN (not finite)"), (float("inf"), "inf (not finite)"), (None, "missing")],
)
def test_nan_inf_missing_fail(value, observed):
    cfg = _cfg(absolute={"log_loss": {"max": 0.3}})
    metrics = {} if value is None else {"log_loss": value}
    report = check_thresholds(metrics, cfg)
    assert not report.passed
    assert report.check("log_loss <= 0.3").observed == observed


def test_nan_metric_from_a_real_model_fails(lr_model, bc_split):
    benign = bc_split.y_test == 1
    metrics = evaluate(lr_model, bc_split.X_test[benign], bc_split.y_test[benign])
    report = check_thresholds(metrics, load_thresholds("breast_cancer"))
    assert [c.name for c in report.failed_checks] == ["roc_auc >= 0.95"]


def test_relative_rules_against_champion(lr_metrics, stump_metrics):
    cfg = load_thresholds("breast_cancer")
    # the strong model as candidate, the stump as champion: improvements pass
    assert check_thresholds(lr_metrics, cfg, champion_metrics=stump_metrics).passed
    # a candidate 0.004 below the champion roc_auc is tolerated, 0.006 is not
    near = {**lr_metrics, "roc_auc": lr_metrics["roc_auc"] - 0.004}
    far = {**lr_metrics, "roc_auc": lr_metrics["roc_auc"] - 0.006}
    assert check_thresholds(near, cfg, champion_metrics=lr_metrics).passed
    report = check_thresholds(far, cfg, champion_metrics=lr_metrics)
    assert [c.name for c in report.failed_checks] == ["roc_auc >= champion - 0.005"]
    assert "Δ -0.006" in report.failed_checks[0].observed


def test_relative_increase_rule_for_lower_is_better(lr_metrics):
    cfg = _cfg(relative={"log_loss": {"max_increase": 0.02}})
    worse = {"log_loss": lr_metrics["log_loss"] + 0.03}
    report = check_thresholds(worse, cfg, champion_metrics=lr_metrics)
    assert [c.name for c in report.failed_checks] == ["log_loss <= champion + 0.02"]
    better = {"log_loss": lr_metrics["log_loss"] - 0.03}
    assert check_thresholds(better, cfg, champion_metrics=lr_metrics).passed


def test_no_champion_skips_relative_rules_and_says_so(lr_metrics):
    report = check_thresholds(lr_metrics, load_thresholds("breast_cancer"), champion_metrics=None)
    assert report.passed
    rel = report.check("roc_auc >= champion - 0.005")
    assert rel.passed and rel.observed.startswith("skipped: no champion") and rel.details["skipped"] is True
    assert report.summary["champion"].startswith("none")


def test_relative_rule_fails_closed_when_champion_value_is_not_finite(lr_metrics):
    cfg = _cfg(relative={"roc_auc": {"max_drop": 0.005}})
    report = check_thresholds(lr_metrics, cfg, champion_metrics={"roc_auc": float("nan")})
    assert not report.passed and "champion NaN" in report.checks[0].observed
    report = check_thresholds({"roc_auc": float("nan")}, cfg, champion_metrics=lr_metrics)
    assert not report.passed and "candidate NaN" in report.checks[0].observed


def test_negative_allowance_requires_an_improvement():
    cfg = _cfg(relative={"accuracy": {"max_drop": -0.01}})
    assert not check_thresholds({"accuracy": 0.905}, cfg, champion_metrics={"accuracy": 0.9}).passed
    assert check_thresholds({"accuracy": 0.92}, cfg, champion_metrics={"accuracy": 0.9}).passed


def test_report_is_json_safe_with_nan():
    report = check_thresholds({"accuracy": math.nan}, _cfg(absolute={"accuracy": {"min": 0.9}}))
    assert '"value": "NaN"' in report.to_json()


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("absolute:\n  accuracy: {min: 0.9\n", ThresholdConfigError, "does not parse"),
        ("absolute:\n  acuracy: {min: 0.9}\n", UnknownMetricError, "unknown metric 'acuracy'"),
        ("absolute:\n  accuracy: {minimum: 0.9}\n", ThresholdConfigError, "unknown key"),
        ("absolute:\n  accuracy: {min: high}\n", ThresholdConfigError, "finite number"),
        ("absolute:\n  accuracy: {min: .nan}\n", ThresholdConfigError, "finite number"),
        ("absolute:\n  accuracy: {min: 0.9, max: 0.5}\n", ThresholdConfigError, "min 0.9 > max 0.5"),
        ("absolute:\n  accuracy: 0.9\n", ThresholdConfigError, "must be a mapping"),
        (
            "relative:\n  roc_auc: {min: 0.9}\n",
            ThresholdConfigError,
            "allowed: \\['max_drop', 'max_increase'\\]",
        ),
        ("absolute: {}\n", ThresholdConfigError, "no threshold rules"),
        ("- accuracy\n", ThresholdConfigError, "expected a mapping"),
        ("floors:\n  accuracy: {min: 0.9}\n", ThresholdConfigError, "unknown top-level"),
    ],
)
def test_bad_configs_raise_typed_errors(tmp_path, text, error, message):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(error, match=message):
        load_thresholds(path)


def test_missing_config_file():
    with pytest.raises(ThresholdConfigError, match="cannot read threshold config"):
        load_thresholds("no_such_dataset")
