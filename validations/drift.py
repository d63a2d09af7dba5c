"""Drift gate: compare a new training batch with a reference batch using GX expectations.

The expectations are built from the reference data and then run on the new batch with Great Expectations,
so the drift checks read like any other GX check in the report:

* every column: ``expect_column_kl_divergence_to_be_less_than`` against the reference distribution.
  Numeric columns with more than ``max_categories`` distinct values are binned at the reference quantiles
  (``bins`` bins, so each holds about the same reference mass) with a small tail holdout, so values outside
  the reference range raise the divergence instead of making it infinite. Other columns (labels, strings,
  booleans, low-cardinality integers) use a categorical partition; a category never seen in the reference
  gives an infinite divergence, i.e. a failure.
* continuous numeric columns also get ``expect_column_mean_to_be_between`` with the reference mean plus or
  minus ``mean_tolerance`` reference standard deviations: a location shift is named plainly.

Defaults are sized so two random halves of a ~300-row dataset pass (over 200 random half splits of
breast cancer the worst column reached KL 0.12 and a 0.33-std mean gap) while a one-std shift fails
(KL about 0.7). With large batches sampling noise shrinks and both tolerances can be tightened.

Non-numeric columns with more than ``max_categories`` distinct values (ids, free text) are skipped and
listed in the report summary. Nulls are ignored here; the data-quality suite checks them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prefect_model_registry.validations._gx import build_suite, result_to_checks, run_suite
from prefect_model_registry.validations.errors import EmptyDataError, MissingColumnsError
from prefect_model_registry.validations.report import GateReport, jsonable

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_BINS = 10
DEFAULT_KL_THRESHOLD = 0.2
DEFAULT_MEAN_TOLERANCE = 0.5
DEFAULT_MAX_CATEGORIES = 20
#: Reference mass moved to the open tails, so unseen extremes cost a lot but not infinitely.
TAIL_WEIGHT_HOLDOUT = 0.01


def _check_frame(df: pd.DataFrame, what: str) -> None:
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    if len(df.index) == 0:
        raise EmptyDataError(f"the {what} DataFrame is empty: drift needs rows on both sides")


def drift_expectations(
    reference: pd.DataFrame,
    columns: Sequence[str],
    *,
    bins: int = DEFAULT_BINS,
    kl_threshold: float = DEFAULT_KL_THRESHOLD,
    mean_tolerance: float = DEFAULT_MEAN_TOLERANCE,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Build JSON-safe GX expectation specs describing ``reference`` (savable as a suite file).

    Args:
        reference: Reference data (e.g. the batch the champion was trained on).
        columns: Columns to profile; they must exist in ``reference``.
        bins: Number of quantile bins for continuous columns.
        kl_threshold: Maximum KL divergence of the new batch from the reference.
        mean_tolerance: Allowed mean shift, in reference standard deviations.
        max_categories: Columns with at most this many distinct values are treated as categorical.

    Returns:
        The expectation specs (``{"type": ..., "kwargs": ...}``) and the skipped column names.

    """
    import numpy as np
    import pandas as pd

    specs: list[dict[str, Any]] = []
    skipped: list[str] = []
    for col in columns:
        values = reference[col].dropna()
        if values.empty:
            skipped.append(col)
            continue
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        n_distinct = values.nunique()
        if numeric and n_distinct > max_categories:
            as_float = values.to_numpy(dtype=float)
            edges = np.unique(np.quantile(as_float, np.linspace(0.0, 1.0, bins + 1)))
            counts, _ = np.histogram(as_float, bins=edges)
            partition = {"bins": edges.tolist(), "weights": (counts / counts.sum()).tolist()}
            kl_kwargs = {"partition_object": partition, "tail_weight_holdout": TAIL_WEIGHT_HOLDOUT}
            mean, std = float(as_float.mean()), float(as_float.std())
            specs.append(
                {
                    "type": "expect_column_mean_to_be_between",
                    "kwargs": {
                        "column": col,
                        "min_value": mean - mean_tolerance * std,
                        "max_value": mean + mean_tolerance * std,
                    },
                    "meta": {"reference_mean": mean, "reference_std": std},
                }
            )
        elif n_distinct <= max_categories:
            freq = values.value_counts(normalize=True, sort=True)
            partition = {"values": jsonable(list(freq.index)), "weights": freq.to_numpy(dtype=float).tolist()}
            kl_kwargs = {"partition_object": partition}
        else:
            skipped.append(col)
            continue
        specs.append(
            {
                "type": "expect_column_kl_divergence_to_be_less_than",
                "kwargs": {"column": col, "threshold": kl_threshold, **kl_kwargs},
            }
        )
    return specs, skipped


def drift_report(
    reference: pd.DataFrame,
    batch: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    bins: int = DEFAULT_BINS,
    kl_threshold: float = DEFAULT_KL_THRESHOLD,
    mean_tolerance: float = DEFAULT_MEAN_TOLERANCE,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
) -> GateReport:
    """Check a new batch for drift against a reference batch; return the ``drift`` gate report.

    Args:
        reference: Reference data, e.g. the training data of the production model.
        batch: New data, e.g. the training batch of a retraining run. Not copied.
        columns: Columns to compare; defaults to every column of ``reference``.
        bins: Number of quantile bins for continuous columns.
        kl_threshold: Maximum KL divergence per column (sampling noise is about ``bins / (2 * rows)``).
        mean_tolerance: Allowed mean shift of continuous columns, in reference standard deviations.
        max_categories: Columns with at most this many distinct values are treated as categorical.

    Returns:
        A :class:`GateReport` (gate ``"drift"``) whose summary lists ``drifted_columns``.

    Raises:
        TypeError: An input is not a DataFrame.
        EmptyDataError: Either DataFrame has no rows.
        MissingColumnsError: A requested column is absent from ``reference`` or ``batch``.
        ValueError: Invalid parameters.

    """
    _check_frame(reference, "reference")
    cols = list(reference.columns) if columns is None else list(columns)
    missing = [c for c in cols if c not in reference.columns]
    if missing:
        raise MissingColumnsError(missing, where="the reference DataFrame")
    profile = reference_profile(
        reference,
        columns=cols,
        bins=bins,
        kl_threshold=kl_threshold,
        mean_tolerance=mean_tolerance,
        max_categories=max_categories,
    )
    return drift_report_from_profile(profile, batch)


def reference_profile(
    reference: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    bins: int = DEFAULT_BINS,
    kl_threshold: float = DEFAULT_KL_THRESHOLD,
    mean_tolerance: float = DEFAULT_MEAN_TOLERANCE,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
) -> dict[str, Any]:
    """The drift profile of a training set: small, JSON-safe, kept with the version it trained.

    A later batch is compared with it (:func:`drift_report_from_profile`) even when the file the version was
    trained on has since been overwritten, as the ``latest.csv`` pattern does every night.

    Raises:
        TypeError, EmptyDataError, ValueError: as :func:`drift_report`.

    """
    _check_frame(reference, "reference")
    if bins < 2 or kl_threshold < 0 or mean_tolerance < 0 or max_categories < 1:
        raise ValueError("need bins >= 2, kl_threshold >= 0, mean_tolerance >= 0, max_categories >= 1")
    cols = [str(c) for c in (reference.columns if columns is None else columns)]
    if not cols:
        raise ValueError("no columns to compare")
    specs, skipped = drift_expectations(
        reference,
        cols,
        bins=bins,
        kl_threshold=kl_threshold,
        mean_tolerance=mean_tolerance,
        max_categories=max_categories,
    )
    return {
        "specs": jsonable(specs),
        "skipped": skipped,
        "columns": [c for c in cols if c not in skipped],
        "rows": len(reference.index),
        "kl_threshold": kl_threshold,
        "mean_tolerance_std": mean_tolerance,
    }


def drift_report_from_profile(profile: Mapping[str, Any], batch: pd.DataFrame) -> GateReport:
    """Check ``batch`` against a stored :func:`reference_profile`; return the ``drift`` gate report.

    Raises:
        TypeError: ``batch`` is not a DataFrame.
        EmptyDataError: ``batch`` has no rows.
        MissingColumnsError: ``batch`` lacks a profiled column.
        ValueError: the profile compares no column.

    """
    _check_frame(batch, "batch")
    specs = list(profile.get("specs") or [])
    if not specs:
        raise ValueError(f"none of the columns can be compared for drift (skipped: {profile.get('skipped')})")
    missing = [c for c in profile.get("columns", []) if c not in batch.columns]
    if missing:
        raise MissingColumnsError(missing, where="the batch DataFrame")
    suite = build_suite("drift", specs, source="drift profile")
    result = run_suite(batch, suite)
    checks = tuple(result_to_checks(result))
    drifted = sorted({str(c.details.get("kwargs", {}).get("column")) for c in checks if not c.passed})
    skipped = list(profile.get("skipped") or [])
    summary: dict[str, Any] = {
        "reference_rows": profile.get("rows"),
        "batch_rows": len(batch.index),
        "columns": len(profile.get("columns", [])),
        "evaluated": len(checks),
        "failed": sum(not c.passed for c in checks),
        "drifted_columns": drifted,
        "kl_threshold": profile.get("kl_threshold"),
        "mean_tolerance_std": profile.get("mean_tolerance_std"),
    }
    if skipped:
        summary["skipped_columns"] = ", ".join(skipped)
    return GateReport(gate="drift", passed=bool(result.success) and not drifted, checks=checks, summary=summary)


def not_checked(why: str) -> GateReport:
    """A ``drift`` report that says why drift could not be checked (it never blocks; the reviewer sees why)."""
    return GateReport(gate="drift", passed=True, checks=(), summary={"checked": False, "why": why})


def profile_report(profile: Mapping[str, Any]) -> GateReport:
    """The training data's drift profile as a ``drift_reference`` report stored in the manifest (not a gate)."""
    return GateReport(gate="drift_reference", passed=True, checks=(), summary=dict(profile))
