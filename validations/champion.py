"""Champion/challenger gate: score the candidate and the production model on the same holdout data.

Only the primary metric gates: the candidate must improve on the champion by at least ``min_improvement``
in the metric's good direction (up for accuracy/roc_auc/r2..., down for log_loss/rmse/mae). A negative
``min_improvement`` is a tolerance: ``-0.005`` lets the candidate be up to 0.005 worse. Every other metric
is reported with its delta, marked informational (absolute and relative rules on them belong in the
thresholds gate, :mod:`prefect_model_registry.validations.thresholds`).

No champion (first model) is a normal case: the gate passes and says so. A primary metric that is NaN or
infinite for either model fails the gate, because the comparison cannot be made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from prefect_model_registry.validations.errors import MetricComputationError
from prefect_model_registry.validations.metrics import (
    check_metric_name,
    default_metrics,
    evaluate,
    higher_is_better,
    is_classifier,
)
from prefect_model_registry.validations.report import CheckResult, GateReport, format_value

#: Slack for float noise, so an identical model is not "worse" by 1e-16.
_EPS = 1e-12


def compare(
    candidate: Any,
    champion: Any | None,
    X: Any,
    y: Any,
    *,
    metrics: Sequence[str] | None = None,
    primary: str | None = None,
    min_improvement: float = 0.0,
) -> GateReport:
    """Evaluate candidate and champion on the same holdout and gate on the primary metric.

    Args:
        candidate: The newly trained model (fitted, scikit-learn compatible).
        champion: The current production model, or None when there is none yet.
        X: Holdout features, shared by both models.
        y: Holdout target.
        metrics: Metric names to report; defaults to ``default_metrics`` of the
            candidate. The primary metric is always included.
        primary: The gating metric; defaults to ``roc_auc`` for classifiers and ``rmse`` for regressors.
        min_improvement: Required improvement of the primary metric over the champion, in its good
            direction; negative values tolerate a small regression.

    Returns:
        A :class:`GateReport` (gate ``"champion_challenger"``) whose summary holds ``candidate``,
        ``champion`` and ``deltas`` (candidate minus champion) metric dicts.

    Raises:
        UnknownMetricError: An unknown metric name.
        MetricComputationError: A metric does not apply, or the champion cannot score the holdout.
        EmptyDataError: The holdout is empty.

    """
    if not math.isfinite(min_improvement):
        raise ValueError(f"min_improvement must be finite, got {min_improvement!r}")
    primary = check_metric_name(primary or ("roc_auc" if is_classifier(candidate) else "rmse"))
    names = list(metrics) if metrics is not None else list(default_metrics(candidate))
    if primary not in names:
        names.insert(0, primary)
    cand = evaluate(candidate, X, y, metrics=names)
    summary: dict[str, Any] = {"primary": primary, "min_improvement": min_improvement, "candidate": cand}

    if champion is None:
        value = cand[primary]
        ok = math.isfinite(value)
        checks = [
            CheckResult(
                name=f"{primary} (primary): candidate vs champion",
                passed=ok,
                expected="a finite candidate value (no champion to compare with)",
                observed=f"candidate {format_value(value)}; no champion: first model",
                details={"metric": primary, "candidate": value, "champion": None},
            )
        ]
        checks += [_info(m, cand[m], None) for m in names if m != primary]
        summary.update(champion=None, deltas={}, note="no champion: first model")
        return GateReport(gate="champion_challenger", passed=ok, checks=tuple(checks), summary=summary)

    try:
        champ = evaluate(champion, X, y, metrics=names)
    except Exception as exc:  # e.g. trained on other features, or a regressor replacing a classifier
        raise MetricComputationError(
            f"the champion ({type(champion).__name__}) cannot be scored on this holdout: {exc}"
        ) from exc
    deltas = {m: cand[m] - champ[m] for m in names}
    checks = [_primary_check(primary, cand[primary], champ[primary], min_improvement)]
    checks += [_info(m, cand[m], champ[m]) for m in names if m != primary]
    summary.update(champion=champ, deltas=deltas)
    return GateReport(gate="champion_challenger", passed=checks[0].passed, checks=tuple(checks), summary=summary)


def _describe(value: float, base: float, metric: str) -> str:
    delta = value - base
    better = delta > _EPS if higher_is_better(metric) else delta < -_EPS
    worse = delta < -_EPS if higher_is_better(metric) else delta > _EPS
    verdict = "better" if better else "worse" if worse else "equal"
    return f"candidate {format_value(value)} vs champion {format_value(base)} (Δ {delta:+.4g}, {verdict})"


def _primary_check(metric: str, value: float, base: float, min_improvement: float) -> CheckResult:
    higher = higher_is_better(metric)
    op = ">=" if higher else "<="
    shift = min_improvement if higher else -min_improvement
    expected = f"candidate {op} champion {'+' if shift >= 0 else '-'} {format_value(abs(shift))}"
    details: dict[str, Any] = {"metric": metric, "candidate": value, "champion": base, "primary": True}
    if not (math.isfinite(value) and math.isfinite(base)):
        who = "candidate" if not math.isfinite(value) else "champion"
        observed = f"{who} value is {format_value(value if who == 'candidate' else base)}: cannot compare"
        return CheckResult(f"{metric} (primary): candidate vs champion", False, expected, observed, (), details)
    improvement = (value - base) if higher else (base - value)
    details.update(delta=value - base, improvement=improvement)
    ok = improvement >= min_improvement - _EPS
    return CheckResult(
        f"{metric} (primary): candidate vs champion",
        ok,
        expected,
        _describe(value, base, metric),
        (),
        details,
    )


def _info(metric: str, value: float, base: float | None) -> CheckResult:
    details: dict[str, Any] = {"metric": metric, "candidate": value, "champion": base, "primary": False}
    if base is None:
        observed = f"candidate {format_value(value)}; no champion"
    else:
        observed = _describe(value, base, metric)
        details["delta"] = value - base
    return CheckResult(f"{metric}: candidate vs champion", True, "informational (not gated)", observed, (), details)
