"""A first suite and thresholds for a user's own data: profile a table, write starter files to edit.

The suite (GX's layout, loadable by the strict loader of :mod:`prefect_model_registry.validations.data_quality`) holds:

- the exact column set, and row-count bounds (a fifth of the rows seen, up to ten times as many);
- per numeric column: its dtype, a range widened by ``margin`` of the observed span on each side (never below
  zero for a column that had no negative value);
- per other column, and per numeric column with two distinct values: the set of values seen;
- not-null for columns without gaps, and for columns with gaps a ``mostly`` that tolerates twice the share seen.

The thresholds start where a model is better than a guess: for a classifier, accuracy above the majority-class
share and ROC AUC above 0.6; for a regressor, R² above 0. Both are only starting points, written with comments
saying so.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import yaml

from prefect_model_registry.validations.errors import EmptyDataError, MissingColumnsError

if TYPE_CHECKING:
    import pandas as pd

#: A target with at most this many distinct values is taken for class labels.
MAX_CLASSES = 20
#: Columns with at most this many distinct values get a value set.
MAX_CATEGORIES = 50


def is_classification_target(series: pd.Series) -> bool:
    """Class labels: text, booleans, or at most :data:`MAX_CLASSES` distinct integers."""
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return True
    values = series.dropna()
    return bool(values.nunique() <= MAX_CLASSES and (values == values.round()).all())


def profile_suite(frame: pd.DataFrame, *, target: str, name: str, margin: float = 0.1) -> dict[str, Any]:
    """A starter data-quality suite (as a mapping in GX's suite layout) that ``frame`` passes.

    Raises:
        EmptyDataError: no rows.
        MissingColumnsError: ``target`` is not a column.

    """
    import pandas as pd

    if len(frame.index) == 0:
        raise EmptyDataError("cannot profile an empty table")
    if target not in frame.columns:
        raise MissingColumnsError([target], where="the profiled data")
    rows = len(frame.index)
    expectations: list[dict[str, Any]] = [
        _exp("expect_table_columns_to_match_set", column_set=[str(c) for c in frame.columns], exact_match=True),
        _exp("expect_table_row_count_to_be_between", min_value=max(1, rows // 5), max_value=rows * 10),
    ]
    for column in frame.columns:
        series = frame[column]
        col = str(column)
        nulls = float(series.isna().mean())
        if nulls == 0:
            expectations.append(_exp("expect_column_values_to_not_be_null", column=col))
        else:
            mostly = math.floor(max(0.0, 1 - 2 * nulls) * 100) / 100
            expectations.append(
                _exp("expect_column_values_to_not_be_null", column=col, mostly=mostly)
                | {"meta": {"profiled": f"{nulls:.1%} missing; tolerates twice that"}}
            )
        values = series.dropna()
        if values.empty:
            continue
        numeric = pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)
        if numeric:
            expectations.append(_exp("expect_column_values_to_be_of_type", column=col, type_=str(series.dtype)))
        if not numeric or values.nunique() <= 2 or (col == target and is_classification_target(series)):
            if values.nunique() <= MAX_CATEGORIES:
                value_set = sorted({_plain(v) for v in values.unique()}, key=repr)
                expectations.append(_exp("expect_column_values_to_be_in_set", column=col, value_set=value_set))
            continue
        low, high = float(values.min()), float(values.max())
        pad = (high - low) * margin or abs(high) * margin or 1.0
        lower = low - pad if low < 0 else max(0.0, low - pad)
        expectations.append(
            _exp(
                "expect_column_values_to_be_between",
                column=col,
                min_value=_round(lower, "down"),
                max_value=_round(high + pad, "up"),
            )
        )
    return {
        "name": name,
        "meta": {"generated_by": "pmr suite init", "rows_profiled": rows, "target": target},
        "expectations": expectations,
    }


def starter_thresholds(frame: pd.DataFrame, *, target: str) -> dict[str, Any]:
    """Starter metric thresholds: better than a guess on this data (see the module docstring)."""
    series = frame[target].dropna()
    if is_classification_target(frame[target]):
        majority = float(series.value_counts(normalize=True).iloc[0])
        return {
            "absolute": {"accuracy": {"min": _round(majority, "down")}, "roc_auc": {"min": 0.6}},
            "relative": {"roc_auc": {"max_drop": 0.01}},
        }
    spread = float(series.std()) if len(series) > 1 else 1.0
    return {
        "absolute": {"r2": {"min": 0.0}},
        "relative": {"rmse": {"max_increase": _round(0.05 * spread, "up")}},
    }


def suite_yaml(suite: dict[str, Any], source: str) -> str:
    """The suite as YAML, with a header saying where it came from and that it is a start."""
    header = (
        f"# Starter data-quality suite profiled from {source} by `pmr suite init`.\n"
        "# Edit it: ranges are the observed ones plus a margin, value sets are the values seen.\n"
        "# Format: validations/data_quality.py (GX's suite layout).\n"
    )
    return header + yaml.safe_dump(suite, sort_keys=False, allow_unicode=True, width=120)


def thresholds_yaml(config: dict[str, Any], source: str) -> str:
    """The thresholds as YAML, with a header explaining the starting values."""
    header = (
        f"# Starter metric thresholds for models trained on {source} (`pmr suite init`).\n"
        "# They only ask for better than a guess; raise them to what your model must reach.\n"
        "# Format: validations/thresholds.py.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False, width=120)


def _exp(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs}


def _plain(value: Any) -> Any:
    """Turn numpy scalars into Python ones (YAML-safe)."""
    return value.item() if hasattr(value, "item") else value


def _round(value: float, direction: str) -> float:
    """Round outward to 3 significant digits, so the bound stays on the safe side of the data."""
    if value == 0 or not math.isfinite(value):
        return 0.0 if value == 0 else value
    scale = 10 ** (math.floor(math.log10(abs(value))) - 2)
    rounded = (math.floor if direction == "down" else math.ceil)(value / scale) * scale
    return float(f"{rounded:.6g}")
