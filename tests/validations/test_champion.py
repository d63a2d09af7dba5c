"""Champion/challenger on real trained models: improvements, regressions, first model, NaN."""

from __future__ import annotations

import pytest
from sklearn.datasets import load_diabetes
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LogisticRegression, Ridge

from prefect_model_registry.validations import UnknownMetricError, compare
from prefect_model_registry.validations.errors import MetricComputationError

PRIMARY = "roc_auc (primary): candidate vs champion"


def test_better_candidate_passes_with_deltas(lr_model, stump_model, bc_split):
    report = compare(lr_model, stump_model, bc_split.X_test, bc_split.y_test)
    assert report.passed and report.gate == "champion_challenger"
    s = report.summary
    assert s["primary"] == "roc_auc"
    assert set(s["candidate"]) == set(s["champion"]) == set(s["deltas"]) >= {"accuracy", "roc_auc", "log_loss"}
    assert s["deltas"]["roc_auc"] == pytest.approx(s["candidate"]["roc_auc"] - s["champion"]["roc_auc"])
    assert s["deltas"]["roc_auc"] > 0.05
    primary = report.check(PRIMARY)
    assert primary.passed and "better" in primary.observed
    assert report.check("log_loss: candidate vs champion").expected == "informational (not gated)"
    assert "better" in report.check("log_loss: candidate vs champion").observed  # lower log_loss is better


def test_worse_candidate_fails(lr_model, stump_model, bc_split):
    report = compare(stump_model, lr_model, bc_split.X_test, bc_split.y_test)
    assert not report.passed
    assert [c.name for c in report.failed_checks] == [PRIMARY]
    assert "worse" in report.failed_checks[0].observed
    assert "| roc_auc (primary): candidate vs champion | ❌ FAIL |" in report.to_markdown()


def test_lower_is_better_primary(lr_model, stump_model, bc_split):
    good = compare(lr_model, stump_model, bc_split.X_test, bc_split.y_test, primary="log_loss")
    bad = compare(stump_model, lr_model, bc_split.X_test, bc_split.y_test, primary="log_loss")
    assert good.passed and good.summary["deltas"]["log_loss"] < 0
    assert not bad.passed
    assert bad.check("log_loss (primary): candidate vs champion").expected == "candidate <= champion + 0"
    demanding = compare(
        lr_model, stump_model, bc_split.X_test, bc_split.y_test, primary="log_loss", min_improvement=0.1
    )
    assert demanding.passed  # log_loss drops by ~0.27
    assert demanding.check("log_loss (primary): candidate vs champion").expected == "candidate <= champion - 0.1"
    too_demanding = compare(
        lr_model, stump_model, bc_split.X_test, bc_split.y_test, primary="log_loss", min_improvement=0.5
    )
    assert not too_demanding.passed


def test_same_model_ties_and_min_improvement(lr_model, bc_split):
    assert compare(lr_model, lr_model, bc_split.X_test, bc_split.y_test).passed
    strict = compare(lr_model, lr_model, bc_split.X_test, bc_split.y_test, min_improvement=0.001)
    assert not strict.passed and strict.check(PRIMARY).expected == "candidate >= champion + 0.001"


def test_tolerance_via_negative_min_improvement(lr_model, stump_model, bc_split):
    gap = compare(stump_model, lr_model, bc_split.X_test, bc_split.y_test).summary["deltas"]["roc_auc"]
    assert compare(stump_model, lr_model, bc_split.X_test, bc_split.y_test, min_improvement=gap - 0.01).passed


def test_no_champion_is_a_normal_first_model(lr_model, bc_split):
    report = compare(lr_model, None, bc_split.X_test, bc_split.y_test)
    assert report.passed
    assert report.summary["champion"] is None and report.summary["deltas"] == {}
    assert report.summary["note"] == "no champion: first model"
    assert "no champion" in report.check(PRIMARY).observed
    assert "no champion" in report.to_markdown()


def test_nan_primary_metric_fails(lr_model, stump_model, bc_split):
    benign = bc_split.y_test == 1
    X, y = bc_split.X_test[benign], bc_split.y_test[benign]
    with_champion = compare(lr_model, stump_model, X, y)
    assert not with_champion.passed
    assert with_champion.check(PRIMARY).observed == "candidate value is NaN: cannot compare"
    first = compare(lr_model, None, X, y)
    assert not first.passed
    assert '"roc_auc": "NaN"' in first.to_json()


def test_regression_defaults_to_rmse():
    X, y = load_diabetes(return_X_y=True)
    ridge = Ridge(alpha=0.1).fit(X[:300], y[:300])
    dummy = DummyRegressor().fit(X[:300], y[:300])
    report = compare(ridge, dummy, X[300:], y[300:])
    assert report.passed and report.summary["primary"] == "rmse"
    assert report.summary["deltas"]["rmse"] < 0
    assert not compare(dummy, ridge, X[300:], y[300:]).passed


def test_errors(lr_model, bc_split):
    with pytest.raises(UnknownMetricError):
        compare(lr_model, None, bc_split.X_test, bc_split.y_test, primary="auc")
    narrow = LogisticRegression(max_iter=1000).fit(bc_split.X_train.iloc[:, :5], bc_split.y_train)
    with pytest.raises(MetricComputationError, match=r"champion \(LogisticRegression\) cannot be scored"):
        compare(lr_model, narrow, bc_split.X_test, bc_split.y_test)
    ridge = Ridge().fit(bc_split.X_train, bc_split.y_train)
    with pytest.raises(MetricComputationError, match=r"champion \(Ridge\) cannot be scored.*regressor"):
        compare(lr_model, ridge, bc_split.X_test, bc_split.y_test)
