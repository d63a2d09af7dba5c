"""Model metrics on holdout data, by name, for binary/multiclass classifiers and regressors.

Metric names are a closed set (:data:`KNOWN_METRICS`) so threshold files and gates can be checked up
front. A metric that is mathematically undefined on the given data (e.g. ``roc_auc`` when the holdout has a
single class) is returned as NaN, never dropped: the gates treat NaN as a failure.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from prefect_model_registry.validations.errors import EmptyDataError, MetricComputationError, UnknownMetricError

CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "roc_auc", "log_loss", "f1", "precision", "recall")
REGRESSION_METRICS: tuple[str, ...] = ("r2", "rmse", "mae")
#: Every metric name the package understands.
KNOWN_METRICS: frozenset[str] = frozenset(CLASSIFICATION_METRICS + REGRESSION_METRICS)
#: Metrics where a smaller value is better; all others are higher-is-better.
LOWER_IS_BETTER: frozenset[str] = frozenset({"log_loss", "rmse", "mae"})


def check_metric_name(name: str) -> str:
    """Return ``name`` if it is a known metric.

    Raises:
        UnknownMetricError: ``name`` is not in :data:`KNOWN_METRICS`.

    """
    if name not in KNOWN_METRICS:
        raise UnknownMetricError(f"unknown metric {name!r}; known metrics: {', '.join(sorted(KNOWN_METRICS))}")
    return name


def higher_is_better(name: str) -> bool:
    """Return True when a larger value of metric ``name`` is better (False for log_loss, rmse, mae)."""
    return check_metric_name(name) not in LOWER_IS_BETTER


def is_classifier(model: Any) -> bool:
    """Return True for scikit-learn style classifiers (``classes_`` or estimator type ``classifier``)."""
    from sklearn.base import is_classifier as sk_is_classifier

    return bool(sk_is_classifier(model) or hasattr(model, "classes_"))


def default_metrics(model: Any) -> tuple[str, ...]:
    """Metric names :func:`evaluate` computes when none are given.

    Classifiers get every classification metric (``log_loss`` only with ``predict_proba``), regressors
    every regression metric.
    """
    if not is_classifier(model):
        return REGRESSION_METRICS
    return tuple(m for m in CLASSIFICATION_METRICS if m != "log_loss" or hasattr(model, "predict_proba"))


def _scores(model: Any, X: Any) -> Any:
    """Probability-like scores for roc_auc: predict_proba, else decision_function."""
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X)
    if hasattr(model, "decision_function"):
        return model.decision_function(X)
    raise MetricComputationError(f"{type(model).__name__} has neither predict_proba nor decision_function")


def evaluate(model: Any, X: Any, y: Any, *, metrics: Sequence[str] | None = None) -> dict[str, float]:
    """Compute named metrics of a fitted model on holdout data.

    Binary classifiers use the second class of ``model.classes_`` as positive; multiclass ones use macro
    averages and one-vs-rest ROC AUC. Undefined values (e.g. ROC AUC with one class present) are NaN.

    Args:
        model: A fitted scikit-learn compatible estimator (or pipeline).
        X: Holdout features.
        y: Holdout target.
        metrics: Metric names; defaults to every classification metric the model supports
            (``log_loss`` needs ``predict_proba``) or every regression metric.

    Returns:
        ``{metric name: float value}`` in the requested order.

    Raises:
        UnknownMetricError: A name is not in :data:`KNOWN_METRICS`.
        MetricComputationError: A metric does not apply to this model (classification metric on a
            regressor, or the reverse, or ``log_loss`` without ``predict_proba``).
        EmptyDataError: ``X`` has no rows.
        ValueError: ``X`` and ``y`` differ in length.

    """
    classifier = is_classifier(model)
    names = list(default_metrics(model)) if metrics is None else [check_metric_name(m) for m in metrics]
    if len(X) == 0:
        raise EmptyDataError("cannot evaluate a model on an empty holdout set")
    if len(X) != len(y):
        # Checked here because ValueErrors raised inside metrics are read as "undefined" (NaN).
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    wrong = [m for m in names if (m in REGRESSION_METRICS) == classifier]
    if wrong:
        kind = "classifier" if classifier else "regressor"
        raise MetricComputationError(f"metric(s) {wrong} do not apply to a {kind} ({type(model).__name__})")

    cache: dict[str, Any] = {}

    def get(key: str, fn: Callable[[], Any]) -> Any:
        if key not in cache:
            cache[key] = fn()
        return cache[key]

    return {name: _metric(name, model, X, y, get) for name in names}


def _metric(name: str, model: Any, X: Any, y: Any, get: Callable[[str, Callable[[], Any]], Any]) -> float:
    import numpy as np
    from sklearn import metrics as skm

    y_pred = get("pred", lambda: model.predict(X))
    if name in REGRESSION_METRICS:
        if name == "r2":
            return _safe(lambda: skm.r2_score(y, y_pred))
        if name == "rmse":
            return _safe(lambda: math.sqrt(skm.mean_squared_error(y, y_pred)))
        return _safe(lambda: skm.mean_absolute_error(y, y_pred))

    classes = list(getattr(model, "classes_", np.unique(y)))
    binary = len(classes) == 2
    if name == "accuracy":
        return _safe(lambda: skm.accuracy_score(y, y_pred))
    if name in ("f1", "precision", "recall"):
        fn = {"f1": skm.f1_score, "precision": skm.precision_score, "recall": skm.recall_score}[name]
        avg: dict[str, Any] = {"average": "binary", "pos_label": classes[1]} if binary else {"average": "macro"}
        return _safe(lambda: fn(y, y_pred, labels=classes, zero_division=np.nan, **avg))
    if name == "log_loss":
        if not hasattr(model, "predict_proba"):
            raise MetricComputationError(f"log_loss needs predict_proba, which {type(model).__name__} lacks")
        proba = get("proba", lambda: model.predict_proba(X))
        return _safe(lambda: skm.log_loss(y, proba, labels=classes))
    # roc_auc
    scores = get("scores", lambda: _scores(model, X))
    if binary:
        positive = scores[:, 1] if getattr(scores, "ndim", 1) == 2 else scores
        return _safe(lambda: skm.roc_auc_score(y, positive))
    return _safe(lambda: skm.roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=classes))


def _safe(fn: Callable[[], Any]) -> float:
    """Run a scikit-learn metric; undefined results (ValueError, warnings about one class) become NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UndefinedMetricWarning etc.: the NaN carries the information
        try:
            return float(fn())
        except ValueError:
            return float("nan")
