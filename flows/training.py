"""Plain training steps (no Prefect): read a dataset, build an estimator, split, fit.

The flows call these; tests can too, without a Prefect server.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from flows.errors import DatasetError, EstimatorError
from registry.errors import DatasetUnavailable
from registry.lineage import fingerprint_bytes, read_dataset_bytes

#: Module prefixes an estimator class may come from (parameters can come from the UI: no arbitrary imports).
ALLOWED_ESTIMATOR_MODULES = ("sklearn.",)


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset with where it came from and the fingerprint of its bytes."""

    frame: pd.DataFrame
    uri: str
    fingerprint: str


@dataclass(frozen=True)
class Split:
    """Train and holdout parts of a dataset."""

    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


def _read_bytes(uri: str) -> bytes:
    try:
        return read_dataset_bytes(uri)
    except DatasetUnavailable as exc:
        raise DatasetError(str(exc)) from None


def read_dataset(uri: str) -> Dataset:
    """Read a CSV or Parquet dataset from a local path or an ``s3://`` URI.

    Raises:
        DatasetError: unreadable, empty, or neither CSV nor Parquet.

    """
    raw = _read_bytes(uri)
    suffix = Path(uri.split("?")[0]).suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(io.BytesIO(raw))
        elif suffix in (".csv", ".txt", ""):
            frame = pd.read_csv(io.BytesIO(raw))
        else:
            raise DatasetError(f"dataset {uri}: unsupported format {suffix!r} (use .csv or .parquet)")
    except (ValueError, OSError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"dataset {uri} cannot be parsed: {exc}") from None
    if frame.empty:
        raise DatasetError(f"dataset {uri} has no rows")
    return Dataset(frame=frame, uri=uri, fingerprint=fingerprint_bytes(raw))


def build_estimator(class_path: str, params: Mapping[str, Any] | None = None, *, standardize: bool = True) -> Any:
    """Instantiate ``class_path`` with ``params``, behind a StandardScaler when ``standardize``.

    Raises:
        EstimatorError: not an allowed module, no such class, or parameters it does not take.

    """
    module_name, _, class_name = class_path.rpartition(".")
    if not module_name.startswith(ALLOWED_ESTIMATOR_MODULES):
        raise EstimatorError(f"estimator {class_path!r} is not from {', '.join(ALLOWED_ESTIMATOR_MODULES)}")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise EstimatorError(f"no estimator class {class_path!r}") from None
    try:
        estimator = cls(**dict(params or {}))
    except TypeError as exc:
        raise EstimatorError(f"{class_name} does not take these parameters: {exc}") from None
    if not standardize:
        return estimator
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), estimator)


def split(frame: pd.DataFrame, target: str, *, test_size: float = 0.25, random_state: int = 42) -> Split:
    """Stratified train/holdout split on ``target``.

    Raises:
        DatasetError: the target column is missing.

    """
    from sklearn.model_selection import train_test_split

    if target not in frame.columns:
        raise DatasetError(f"target column {target!r} is not in the dataset (columns: {list(frame.columns)[:8]}…)")
    X = frame.drop(columns=[target])
    y = frame[target]
    stratify = y if y.nunique() <= 20 else None
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=random_state, stratify=stratify
    )
    return Split(X_train, X_test, y_train, y_test)


def fit(estimator: Any, data: Split) -> Any:
    """Fit ``estimator`` on the training part (returns it)."""
    try:
        return estimator.fit(data.X_train, data.y_train)
    except ValueError as exc:
        raise EstimatorError(f"fitting failed: {exc}") from None
