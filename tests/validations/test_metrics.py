"""Metric evaluation on real trained models: binary, multiclass, regression, undefined values."""

from __future__ import annotations

import math

import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.svm import LinearSVC

from prefect_model_registry.validations import KNOWN_METRICS, evaluate
from prefect_model_registry.validations.errors import EmptyDataError, MetricComputationError, UnknownMetricError
from prefect_model_registry.validations.metrics import higher_is_better


def test_known_metrics():
    assert {
        "accuracy",
        "roc_auc",
        "log_loss",
        "f1",
        "precision",
        "recall",
        "r2",
        "rmse",
        "mae",
    } == KNOWN_METRICS
    assert higher_is_better("roc_auc") and not higher_is_better("log_loss") and not higher_is_better("rmse")


def test_binary_classifier_metrics(lr_model, bc_split):
    m = evaluate(lr_model, bc_split.X_test, bc_split.y_test)
    assert list(m) == ["accuracy", "roc_auc", "log_loss", "f1", "precision", "recall"]
    assert m["accuracy"] == pytest.approx(lr_model.score(bc_split.X_test, bc_split.y_test))
    assert m["roc_auc"] > 0.98 and 0 < m["log_loss"] < 0.2
    assert all(isinstance(v, float) for v in m.values())


def test_selected_metrics_only(lr_model, bc_split):
    m = evaluate(lr_model, bc_split.X_test, bc_split.y_test, metrics=["log_loss", "accuracy"])
    assert list(m) == ["log_loss", "accuracy"]


def test_multiclass_classifier_metrics():
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X[::2], y[::2])
    m = evaluate(model, X[1::2], y[1::2])
    assert m["accuracy"] > 0.9 and m["roc_auc"] > 0.95 and m["f1"] > 0.9
    assert all(math.isfinite(v) for v in m.values())


def test_regression_metrics():
    X, y = load_diabetes(return_X_y=True)
    model = Ridge(alpha=0.1).fit(X[:300], y[:300])
    m = evaluate(model, X[300:], y[300:])
    assert list(m) == ["r2", "rmse", "mae"]
    assert 0.3 < m["r2"] < 0.8 and m["rmse"] > m["mae"] > 0


def test_single_class_holdout_gives_nan_roc_auc(lr_model, bc_split):
    only_benign = bc_split.y_test == 1
    m = evaluate(lr_model, bc_split.X_test[only_benign], bc_split.y_test[only_benign])
    assert math.isnan(m["roc_auc"])
    assert m["accuracy"] > 0.9


def test_model_without_predict_proba(bc_split):
    model = LinearSVC(dual="auto").fit(bc_split.X_train / bc_split.X_train.max(), bc_split.y_train)
    X = bc_split.X_test / bc_split.X_train.max()
    m = evaluate(model, X, bc_split.y_test)
    assert "log_loss" not in m and m["roc_auc"] > 0.9  # roc_auc from decision_function
    with pytest.raises(MetricComputationError, match="predict_proba"):
        evaluate(model, X, bc_split.y_test, metrics=["log_loss"])


def test_bad_requests(lr_model, bc_split):
    with pytest.raises(UnknownMetricError, match=r"'auc'.*known metrics: accuracy"):
        evaluate(lr_model, bc_split.X_test, bc_split.y_test, metrics=["auc"])
    with pytest.raises(MetricComputationError, match="do not apply to a classifier"):
        evaluate(lr_model, bc_split.X_test, bc_split.y_test, metrics=["rmse"])
    with pytest.raises(EmptyDataError):
        evaluate(lr_model, bc_split.X_test.iloc[:0], bc_split.y_test.iloc[:0])
    with pytest.raises(ValueError, match="rows"):
        evaluate(lr_model, bc_split.X_test, bc_split.y_test.iloc[:10])
