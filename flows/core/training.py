"""Plain training steps (no Prefect): read a dataset, build an estimator, split, fit.

The flows call these; tests can too, without a Prefect server.
"""

from __future__ import annotations

import functools
import importlib
import io
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from prefect_model_registry.flows.errors import DatasetError, EstimatorError, TrainerError
from prefect_model_registry.registry.core.lineage import fingerprint_bytes, read_dataset_bytes
from prefect_model_registry.registry.errors import DatasetUnavailable
from prefect_model_registry.registry.settings import TRAINER_MODULES, settings

#: Environment variable holding the modules a trainer function may come from (comma-separated).
TRAINER_MODULES_ENV = TRAINER_MODULES
#: The estimator a run trains when it names none.
DEFAULT_ESTIMATOR = "sklearn.linear_model.LogisticRegression"
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


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


@functools.cache
def _estimator_classes() -> frozenset[type]:
    from sklearn.utils import all_estimators

    return frozenset(cls for _, cls in all_estimators())


def resolve_estimator(class_path: str) -> type:
    """The scikit-learn estimator class ``class_path`` names (public or private path), or a refusal.

    Only a module of scikit-learn itself is imported, and what the name resolves to must be one of
    ``sklearn.utils.all_estimators()`` (compared by identity): a function or any other class re-exported into a
    scikit-learn module (``sklearn.utils._testing.check_output`` is ``subprocess.check_output``) is refused
    before anything is called.

    Raises:
        EstimatorError: malformed, outside scikit-learn, or not an estimator class.

    """
    module_name, _, class_name = class_path.rpartition(".")
    if not _DOTTED.fullmatch(class_path) or not (module_name == "sklearn" or module_name.startswith("sklearn.")):
        raise EstimatorError(f"estimator {class_path!r} must be a scikit-learn class path, e.g. {DEFAULT_ESTIMATOR}")
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise EstimatorError(f"no estimator class {class_path!r}") from None
    if not isinstance(found, type) or found not in _estimator_classes():
        raise EstimatorError(
            f"{class_path!r} is not a scikit-learn estimator class (sklearn.utils.all_estimators() lists them)"
        )
    return found


def build_estimator(
    class_path: str,
    params: Mapping[str, Any] | None = None,
    *,
    preprocessing: str = "auto",
    features: pd.DataFrame | None = None,
) -> Any:
    """Instantiate ``class_path`` with ``params``, behind the default preprocessing when ``preprocessing="auto"``.

    Args:
        class_path: a scikit-learn estimator class, e.g. ``sklearn.ensemble.HistGradientBoostingClassifier``.
        params: its hyperparameters.
        preprocessing: ``"auto"`` (:func:`default_preprocessor` of ``features``) or ``"none"``.
        features: the training features (without the target); needed for ``"auto"``.

    Raises:
        EstimatorError: not a scikit-learn estimator class, or parameters it does not take.

    """
    cls = resolve_estimator(class_path)
    try:
        estimator = cls(**dict(params or {}))
    except TypeError as exc:
        raise EstimatorError(f"{cls.__name__} does not take these parameters: {exc}") from None
    if preprocessing == "none":
        return estimator
    if preprocessing != "auto" or features is None:
        raise EstimatorError(f"preprocessing {preprocessing!r} needs to be 'auto' (with the features) or 'none'")
    from sklearn.pipeline import Pipeline

    return Pipeline([("preprocess", default_preprocessor(features)), ("model", estimator)])


def default_preprocessor(features: pd.DataFrame) -> Any:
    """The preprocessing for a mixed table with gaps.

    Numeric columns get median imputation and scaling; the others (strings, categories, booleans) get
    most-frequent imputation and a one-hot encoding that ignores categories unseen in training.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in features.columns if pd.api.types.is_numeric_dtype(features[c].dtype)]
    numeric = [c for c in numeric if not pd.api.types.is_bool_dtype(features[c].dtype)]
    categorical = [c for c in features.columns if c not in numeric]
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric)
        )
    if categorical:
        encode = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        impute = SimpleImputer(strategy="most_frequent")
        parts.append(("categorical", Pipeline([("impute", impute), ("encode", encode)]), categorical))
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)


def allowed_trainer_modules(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Modules a trainer function may come from in a person's own process: ``PMR_TRAINER_MODULES``, comma-separated.

    A deployment's runs ignore it: a run's job variables can set the environment, so their list comes from the
    worker policy (:mod:`prefect_model_registry.flows.core.trust`).
    """
    return settings(env).trainer_modules


def load_trainer(
    spec: str, allowed: Sequence[str] | None = None, where: str = TRAINER_MODULES_ENV
) -> Callable[..., Any]:
    """Import the trainer ``module:function`` if its module is listed exactly and the function is its own.

    Args:
        spec: ``package.module:function``.
        allowed: exact module names (default :func:`allowed_trainer_modules`); a listed package does not admit
            its submodules.
        where: where the list lives, for the refusal.

    Raises:
        TrainerError: malformed, not allowed (nothing is imported), missing, not callable, or defined in another
            module (a re-export such as ``from os import system`` is refused).

    """
    module_name, sep, func_name = spec.partition(":")
    if not sep or not _DOTTED.fullmatch(module_name) or not func_name.isidentifier():
        raise TrainerError(f"trainer {spec!r} must look like 'my_package.module:function'")
    allowed = allowed_trainer_modules() if allowed is None else tuple(allowed)
    if module_name not in allowed:
        listed = ", ".join(allowed) or "nothing"
        raise TrainerError(
            f"trainer module {module_name!r} is not allowed: {where} allows {listed} "
            f"(exact module names, set by the operator; run parameters cannot)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TrainerError(f"trainer module {module_name!r} cannot be imported: {exc}") from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise TrainerError(f"{module_name} has no function {func_name!r}")
    if getattr(fn, "__module__", None) != module_name or getattr(fn, "__qualname__", None) != func_name:
        raise TrainerError(f"{spec!r} is not defined in {module_name} (a re-exported callable is not a trainer)")
    return fn


def run_trainer(fn: Callable[..., Any], data: Split, target: str, params: Mapping[str, Any]) -> Any:
    """Call a user trainer with the training frame (features and target), the target name and the params.

    Raises:
        TrainerError: it returned something without ``predict``.

    """
    frame = data.X_train.assign(**{target: data.y_train})
    model = fn(frame, target, dict(params))
    if not callable(getattr(model, "predict", None)):
        raise TrainerError(
            f"trainer {fn.__module__}.{fn.__name__} returned {type(model).__name__}, not a fitted estimator"
        )
    return model


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
    # Stratify class labels when every class can be split; a regression target (many values) is not stratified.
    counts = y.value_counts()
    stratify = y if len(counts) <= 20 and counts.min() >= 2 else None
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


def train(
    data: Split,
    target: str,
    params: Mapping[str, Any],
    *,
    trainer: str | None = None,
    estimator: str = DEFAULT_ESTIMATOR,
    preprocessing: str = "auto",
    trainer_modules: Sequence[str] | None = None,
) -> Any:
    """Fit one model on the training part: the user's ``trainer`` if given, else ``estimator`` (preprocessed).

    ``trainer_modules`` is the allow-list the flow resolved (default: ``PMR_TRAINER_MODULES``).

    Raises:
        TrainerError: the trainer is not allowed, missing, or returned no estimator.
        EstimatorError: the estimator class or its parameters are unusable, or fitting failed.

    """
    if trainer:
        return run_trainer(load_trainer(trainer, trainer_modules), data, target, params)
    return fit(build_estimator(estimator, params, preprocessing=preprocessing, features=data.X_train), data)


def signature(features: pd.DataFrame) -> list[dict[str, str]]:
    """A model's input signature: its training columns, in order, with their dtypes."""
    return [{"name": str(column), "dtype": str(dtype)} for column, dtype in features.dtypes.items()]
