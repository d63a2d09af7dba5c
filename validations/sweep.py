"""Choosing a sweep's winner, ties included, and saying how it was chosen.

The best value of the primary metric wins. Candidates within ``tolerance`` of it are tied: the secondary metric
decides among them (each metric in its own good direction: lower for log_loss, rmse and mae), then candidate
order (the first listed). An undefined value (NaN) never beats a defined one. The ``sweep`` report's summary
keeps ``primary``, ``candidates`` and ``best`` (1-based) and adds ``secondary``, ``tie_tolerance``, ``tied``
(1-based), ``decided_by`` (the primary metric, the secondary one, or ``"candidate order"``) and ``how``, the
sentence the model card shows.

Plain functions over the candidates' metrics: the retraining flow (``flows/pipeline.py``) trains the candidates
and calls :func:`choose`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from prefect_model_registry.validations.errors import SweepConfigError
from prefect_model_registry.validations.metrics import higher_is_better
from prefect_model_registry.validations.report import CheckResult, GateReport, format_value

#: The tie-breaker when the config names none and the model has ``predict_proba``.
DEFAULT_SECONDARY = "log_loss"
#: ``secondary_metric: none`` turns the tie-breaker off: candidate order decides a tie.
NO_SECONDARY = "none"
#: What ``decided_by`` says when neither metric told the tied candidates apart.
BY_ORDER = "candidate order"

Scored = Sequence[tuple[Mapping[str, Any], Mapping[str, float]]]


def secondary_for(setting: str | None, primary: str, model: Any) -> str | None:
    """The metric that breaks ties for this sweep, or ``None``.

    Args:
        setting: the config's ``secondary_metric``: a metric name, ``"none"``, or ``None`` for the default
            (``log_loss`` when ``model`` has ``predict_proba`` and the primary metric is another, else none).
        primary: the primary metric the candidates are ranked on.
        model: a trained candidate (its kind decides the default).

    Raises:
        SweepConfigError: an explicit secondary metric equal to the primary one.

    """
    if setting == NO_SECONDARY:
        return None
    if setting is None:
        return DEFAULT_SECONDARY if hasattr(model, "predict_proba") and primary != DEFAULT_SECONDARY else None
    if setting == primary:
        raise SweepConfigError(
            f"config field 'secondary_metric': {setting!r} is the primary metric; it cannot break its ties"
        )
    return setting


def tolerance_text(tolerance: float) -> str:
    """``1e-9`` rather than Python's ``1e-09``."""
    return re.sub(r"e([-+])0*(\d)", r"e\1\2", f"{tolerance:g}").replace("e+", "e")


def choose(scored: Scored, primary: str, secondary: str | None, tolerance: float) -> tuple[int, GateReport]:
    """The index of the winning candidate and the advisory ``sweep`` report listing them all.

    Args:
        scored: each candidate's parameters and holdout metrics, in candidate order.
        primary: the metric that ranks them.
        secondary: the metric that decides a tie on ``primary`` (``None``: candidate order does).
        tolerance: how far from the best value a candidate still ties (absolute, for both metrics).

    Raises:
        SweepConfigError: ``secondary`` is computed for none of the candidates (e.g. ``rmse`` for classifiers).

    """
    if secondary is not None and not any(secondary in m for _, m in scored):
        computed = ", ".join(sorted(scored[0][1])) if scored else "none"
        raise SweepConfigError(
            f"config field 'secondary_metric': {secondary!r} is not computed for these candidates "
            f"(their metrics: {computed}); nothing registered"
        )
    everyone = list(range(len(scored)))
    tied = _leaders(scored, everyone, primary, tolerance)
    tol = tolerance_text(tolerance)
    listed = ", ".join(str(i + 1) for i in tied)
    if len(tied) == 1:
        best, decided_by = tied[0], primary
        how = f"best {primary} ({format_value(scored[best][1].get(primary, math.nan))})"
    else:
        tie = (
            f"tied on {primary} within {tol} (candidates {listed})"
            if _defined(scored, tied[0], primary)
            else f"no candidate has a defined {primary}"
        )
        if secondary is None:
            best, decided_by = tied[0], BY_ORDER
            how = f"{tie}; no secondary metric; decided by candidate order"
        else:
            finalists = _leaders(scored, tied, secondary, tolerance)
            direction = "higher" if higher_is_better(secondary) else "lower"
            best = finalists[0]
            if len(finalists) == 1:
                decided_by = secondary
                how = f"{tie}; decided by {secondary} ({direction} is better)"
            elif _defined(scored, best, secondary):
                decided_by = BY_ORDER
                how = f"{tie}; tied on {secondary} too; decided by candidate order"
            else:
                decided_by = BY_ORDER
                how = f"{tie}; {secondary} undefined; decided by candidate order"
    rule = f"best {primary} on the holdout wins; a tie within {tol}: " + (
        f"best {secondary}, then candidate order" if secondary else "candidate order"
    )
    checks = tuple(
        CheckResult(
            name=f"candidate {i + 1}" + (" (best)" if i == best else ""),
            passed=True,
            expected=rule,
            observed=f"{primary} {format_value(m.get(primary, math.nan))}"
            + (f", {secondary} {format_value(m.get(secondary, math.nan))}" if secondary else ""),
            details={"params": dict(params), "metrics": dict(m), "best": i == best},
        )
        for i, (params, m) in enumerate(scored)
    )
    summary = {
        "primary": primary,
        "candidates": len(scored),
        "best": best + 1,
        "secondary": secondary,
        "tie_tolerance": tolerance,
        "tied": [i + 1 for i in tied],
        "decided_by": decided_by,
        "how": f"candidate {best + 1} of {len(scored)}: {how}",
    }
    return best, GateReport(gate="sweep", passed=True, checks=checks, summary=summary)


def _defined(scored: Scored, i: int, metric: str) -> bool:
    return math.isfinite(scored[i][1].get(metric, math.nan))


def _leaders(scored: Scored, among: list[int], metric: str, tolerance: float) -> list[int]:
    """Those of ``among`` within ``tolerance`` of the best defined ``metric``; all of them when none is defined."""
    sign = 1.0 if higher_is_better(metric) else -1.0
    defined = [i for i in among if _defined(scored, i, metric)]
    if not defined:
        return list(among)
    top = max(sign * scored[i][1][metric] for i in defined)
    return [i for i in defined if top - sign * scored[i][1][metric] <= tolerance]
