"""Fitted scikit-learn models, one per estimator, that the reviewed skops list is generated from.

``trusted_types`` dumps each of these with skops and records every type and function they hold
beyond skops' own defaults: what real models need to load, and nothing else. The round-trip tests
(``tests/registry/test_roundtrip_estimators.py``) register and load the same models.

Every estimator of :func:`sklearn.utils.all_estimators` is fitted on one small mixed table (numeric columns and a
categorical one, both with gaps) through a :class:`~sklearn.compose.ColumnTransformer` that imputes, scales to
``[0, 1]`` and one-hot encodes, so each gets numeric non-negative input: classifiers on a class target, regressors
on a numeric one, transformers and clusterers unsupervised unless they need a target. Estimators that need
another input (text, dicts, labels, a kernel, one feature) get it from the same table; meta-estimators get small
inner estimators. A few loss and link variants and the models named in the README (a categorical
``HistGradientBoostingClassifier``, a ``Pipeline`` with a ``ColumnTransformer``) are added, since the internal
types a model holds depend on them.

Imports scikit-learn and pandas only when called.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

#: Rows of the table every specimen is fitted on: enough for 2-fold searches and neighbours, small enough that
#: fitting all of them takes seconds.
ROWS = 48


@dataclass(frozen=True)
class Data:
    """The table and targets specimens are fitted on (see :func:`data`)."""

    frame: Any  # pandas.DataFrame: numeric columns with gaps and a categorical column with gaps
    y_class: Any  # three classes
    y_binary: Any
    y_reg: Any
    y_multi_class: Any  # two binary label columns
    y_multi_reg: Any  # two numeric columns
    width: int  # columns of the preprocessed table


@dataclass(frozen=True)
class Specimen:
    """One fitted model and how to feed it.

    Attributes:
        name: the estimator's class name, or ``Class[variant]`` for a variant.
        model: the fitted model (usually a :class:`~sklearn.pipeline.Pipeline` of the preprocessor and it).
        X: input to compare the original and a loaded copy on (``None``: compare fitted attributes only).

    """

    name: str
    model: Any
    X: Any


class Unfittable(Exception):
    """A specimen that cannot be made from the table (the message says why)."""


def data(rows: int = ROWS, seed: int = 0) -> Data:
    """The small mixed table: three numeric columns and a categorical one, each with gaps."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, rows).astype(float),
            "charges": rng.normal(70, 20, rows),
            "calls": rng.poisson(3, rows).astype(float),
            "contract": rng.choice(["monthly", "yearly", "two-year"], rows),
        }
    )
    score = frame["tenure"].to_numpy() / 72 + (frame["contract"] == "monthly").to_numpy() + rng.normal(0, 0.3, rows)
    long_tenure = (frame["tenure"].to_numpy() > 36).astype(int)
    frame.loc[::13, "tenure"] = np.nan
    frame.loc[::7, "charges"] = np.nan
    frame.loc[::5, "calls"] = np.nan
    frame.loc[::11, "contract"] = None
    y_class = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    y_binary = (score > np.median(score)).astype(int)
    y_reg = 10 + 5 * score + rng.normal(0, 0.5, rows)  # positive: Poisson and Gamma losses need that
    y_multi_class = np.column_stack([y_binary, long_tenure])
    y_multi_reg = np.column_stack([y_reg, 2 * y_reg + rng.normal(0, 0.5, rows)])
    width = preprocessor().fit_transform(frame).shape[1]
    return Data(frame, y_class, y_binary, y_reg, y_multi_class, y_multi_reg, width)


def preprocessor() -> Any:
    """Impute, scale to ``[0, 1]`` and one-hot encode: numeric non-negative input for every estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder

    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), MinMaxScaler()), ["tenure", "charges", "calls"]),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    # drop="first": a full one-hot block is collinear, which covariance estimators refuse
                    OneHotEncoder(drop="first", handle_unknown="ignore", sparse_output=False),
                ),
                ["contract"],
            ),
        ]
    )


def _inner(kind: str) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge

    return LogisticRegression(max_iter=200) if kind == "classifier" else Ridge()


def _meta_args(d: Data) -> dict[str, Callable[[], dict[str, Any]]]:
    """Constructor arguments of the estimators that require some: small inner estimators."""
    import numpy as np
    from sklearn.decomposition import PCA, TruncatedSVD
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    clf, reg = (lambda: _inner("classifier")), (lambda: _inner("regressor"))
    return {
        "ClassifierChain": lambda: {"estimator": clf()},
        "ColumnTransformer": lambda: {
            "transformers": [("scale", StandardScaler(), [0, 1]), ("keep", "passthrough", [2])]
        },
        "FeatureUnion": lambda: {"transformer_list": [("pca", PCA(2)), ("svd", TruncatedSVD(2, random_state=0))]},
        "FixedThresholdClassifier": lambda: {"estimator": clf(), "threshold": 0.4},
        "GridSearchCV": lambda: {"estimator": clf(), "param_grid": {"C": [0.1, 1.0]}, "cv": 2},
        "MultiOutputClassifier": lambda: {"estimator": clf()},
        "MultiOutputRegressor": lambda: {"estimator": reg()},
        "OneVsOneClassifier": lambda: {"estimator": clf()},
        "OneVsRestClassifier": lambda: {"estimator": clf()},
        "OutputCodeClassifier": lambda: {"estimator": clf(), "random_state": 0},
        "RFE": lambda: {"estimator": clf(), "n_features_to_select": 2},
        "RFECV": lambda: {"estimator": clf(), "cv": 2},
        "RandomizedSearchCV": lambda: {
            "estimator": clf(),
            "param_distributions": {"C": [0.1, 1.0, 10.0]},
            "n_iter": 2,
            "cv": 2,
            "random_state": 0,
        },
        "Pipeline": lambda: {"steps": [("scale", StandardScaler()), ("lr", clf())]},
        "RegressorChain": lambda: {"estimator": reg()},
        "SelectFromModel": lambda: {"estimator": clf()},
        "SelfTrainingClassifier": lambda: {"estimator": clf()},
        "SequentialFeatureSelector": lambda: {"estimator": clf(), "n_features_to_select": 2, "cv": 2},
        "SparseCoder": lambda: {"dictionary": np.eye(d.width)[:2]},
        "StackingClassifier": lambda: {
            "estimators": [("lr", clf()), ("tree", DecisionTreeClassifier(max_depth=2, random_state=0))],
            "cv": 2,
        },
        "StackingRegressor": lambda: {
            "estimators": [("ridge", reg()), ("tree", DecisionTreeRegressor(max_depth=2, random_state=0))],
            "cv": 2,
        },
        "TunedThresholdClassifierCV": lambda: {"estimator": clf(), "cv": 2},
        "VotingClassifier": lambda: {
            "estimators": [("lr", clf()), ("tree", DecisionTreeClassifier(max_depth=2, random_state=0))],
            "voting": "soft",
        },
        "VotingRegressor": lambda: {
            "estimators": [("ridge", reg()), ("tree", DecisionTreeRegressor(max_depth=2, random_state=0))]
        },
        "FrozenEstimator": lambda: {"estimator": clf().fit(preprocessor().fit_transform(d.frame), d.y_class)},
    }


#: Smaller settings wherever an estimator has them, so that every specimen fits in a fraction of a second.
FAST = {
    "n_estimators": 5,
    "max_iter": 20,
    "n_init": 1,
    "n_restarts_optimizer": 0,
    "n_components": 2,
    "n_neighbors": 5,
    "perplexity": 5.0,
    "max_depth": 3,
    "cv": 2,
}
#: Per estimator, settings that must differ from :data:`FAST` or the defaults for it to fit on the table.
TWEAKS: dict[str, dict[str, Any]] = {
    "CCA": {"n_components": 1},
    "CategoricalNB": {"min_categories": 2},
    "GaussianRandomProjection": {"n_components": 2},
    "KNeighborsTransformer": {"n_neighbors": 5},
    "LatentDirichletAllocation": {"max_iter": 5},
    "LinearDiscriminantAnalysis": {"n_components": 2},
    "MiniBatchDictionaryLearning": {"max_iter": 5},
    "MiniBatchNMF": {"max_iter": 5},
    "NMF": {"max_iter": 50},
    "OrthogonalMatchingPursuitCV": {"max_iter": None},
    "PLSCanonical": {"n_components": 1},
    "PLSSVD": {"n_components": 1},
    "QuadraticDiscriminantAnalysis": {"reg_param": 0.1},
    "RadiusNeighborsClassifier": {"radius": 5.0},
    "RadiusNeighborsRegressor": {"radius": 5.0},
    "RadiusNeighborsTransformer": {"radius": 5.0},
    "SparseRandomProjection": {"n_components": 2},
    "SpectralBiclustering": {"n_best": 2},
    "TSNE": {"max_iter": 250},
}


def _construct(name: str, cls: type[Any], meta: dict[str, Callable[[], dict[str, Any]]]) -> Any:
    """``cls`` with :data:`FAST` settings, its :data:`TWEAKS` and, for a meta-estimator, inner estimators."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = meta[name]() if name in meta else {}
    for key, value in {**FAST, **TWEAKS.get(name, {})}.items():
        if key in params and key not in kwargs:
            kwargs[key] = value
    if "random_state" in params and "random_state" not in kwargs:
        kwargs["random_state"] = 0
    required = [
        p.name
        for p in params.values()
        if p.name != "self" and p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    missing = [p for p in required if p not in kwargs]
    if missing:
        raise Unfittable(f"required constructor arguments {missing}")
    return cls(**kwargs)


def _fit(name: str, est: Any, d: Data) -> Specimen:
    """Fit ``est`` on the table the way its tags ask for."""
    from sklearn.base import is_classifier, is_regressor
    from sklearn.pipeline import Pipeline

    tags = est.__sklearn_tags__()
    frame = d.frame
    if (tags.input_tags.string or tags.input_tags.dict) and not tags.input_tags.two_d_array:
        # Text and dict vectorisers: the categorical column as words, or each row as a record.
        if tags.input_tags.dict:
            records = frame.fillna({"contract": "none"}).fillna(0.0).to_dict("records")
            return Specimen(name, est.fit(records, d.y_class), records)
        text = [
            f"{c or 'none'} contract, {t:.0f} months" for c, t in zip(frame["contract"], frame["tenure"], strict=True)
        ]
        return Specimen(name, est.fit(text, d.y_class), text)
    if tags.target_tags.one_d_labels or tags.target_tags.two_d_labels:
        # Label encoders fit on the target alone.
        labels = [{int(a), int(b) + 2} for a, b in d.y_multi_class] if tags.target_tags.two_d_labels else d.y_class
        return Specimen(name, est.fit(labels), labels)
    if tags.input_tags.one_d_array and not tags.input_tags.two_d_array:
        x = frame["tenure"].fillna(frame["tenure"].median()).to_numpy()  # one feature, its gaps imputed
        return Specimen(name, est.fit(x, d.y_reg), x)
    pre = preprocessor()
    if tags.input_tags.pairwise:
        # A kernel: the Gram matrix of the preprocessed table.
        xt = pre.fit_transform(frame)
        gram = xt @ xt.T
        y = d.y_class if is_classifier(est) else d.y_reg if is_regressor(est) else None
        return Specimen(name, est.fit(gram, y) if y is not None else est.fit(gram), gram)
    if is_classifier(est):
        multi = not tags.target_tags.single_output
        y = d.y_multi_class if multi else d.y_class if tags.classifier_tags.multi_class else d.y_binary
    elif is_regressor(est):
        y = d.y_multi_reg if not tags.target_tags.single_output else d.y_reg
    elif tags.target_tags.required:
        y = d.y_class
    else:
        y = None
    model = Pipeline([("pre", pre), ("est", est)])
    try:
        model.fit(frame, y)
    except (ValueError, TypeError):
        if y is not None:
            raise
        # Selectors and PLSSVD need a target their tags do not ask for.
        model = Pipeline([("pre", preprocessor()), ("est", est)]).fit(frame, d.y_class)
    return Specimen(name, model, frame if hasattr(model, "transform") or _predicts(model) else None)


def _predicts(model: Any) -> bool:
    return any(hasattr(model, m) for m in ("predict", "predict_proba", "decision_function", "score_samples"))


def estimator(name: str, d: Data | None = None) -> Specimen:
    """Fit the estimator called ``name`` (a class name from :func:`sklearn.utils.all_estimators`).

    Raises:
        Unfittable: it needs something the table cannot give (the message says what).

    """
    from sklearn.utils import all_estimators

    classes = dict(all_estimators())
    if name not in classes:
        raise KeyError(name)
    d = d if d is not None else data()
    with warnings.catch_warnings():
        # Deprecations, convergence and small-sample warnings are expected on 48 rows.
        warnings.simplefilter("ignore")
        est = _construct(name, classes[name], _meta_args(d))
        try:
            return _fit(name, est, d)
        except Unfittable:
            raise
        except Exception as exc:
            raise Unfittable(f"cannot fit on the table: {type(exc).__name__}: {exc}") from exc


def _variant_makers(d: Data) -> dict[str, Callable[[], Specimen]]:
    """Models whose internal types depend on a setting (losses, links, trees, metrics, categorical features), by name.

    Each maker fits its model when called.
    """
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
    )
    from sklearn.linear_model import (
        LogisticRegression,
        Ridge,
        SGDClassifier,
        SGDRegressor,
        TweedieRegressor,
    )
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline

    frame = d.frame
    makers: dict[str, Callable[[], Specimen]] = {}

    def add(name: str, est: Any, y: Any) -> None:
        makers[name] = lambda: Specimen(name, Pipeline([("pre", preprocessor()), ("est", est)]).fit(frame, y), frame)

    for loss in ("hinge", "log_loss", "modified_huber", "squared_hinge", "perceptron", "squared_error", "huber"):
        add(f"SGDClassifier[{loss}]", SGDClassifier(loss=loss, max_iter=20, random_state=0), d.y_class)
    for loss in ("squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive"):
        add(f"SGDRegressor[{loss}]", SGDRegressor(loss=loss, max_iter=20, random_state=0), d.y_reg)
    for loss in ("log_loss", "exponential"):
        gb = GradientBoostingClassifier(loss=loss, n_estimators=3, random_state=0)
        add(f"GradientBoostingClassifier[{loss},binary]", gb, d.y_binary)
    for loss in ("squared_error", "absolute_error", "huber", "quantile"):
        add(f"GradientBoostingRegressor[{loss}]", GradientBoostingRegressor(loss=loss, n_estimators=3), d.y_reg)
    add("HistGradientBoostingClassifier[binary]", HistGradientBoostingClassifier(max_iter=5), d.y_binary)
    for loss in ("squared_error", "absolute_error", "gamma", "poisson", "quantile"):
        extra = {"quantile": 0.5} if loss == "quantile" else {}
        add(
            f"HistGradientBoostingRegressor[{loss}]",
            HistGradientBoostingRegressor(loss=loss, max_iter=5, **extra),
            d.y_reg,
        )
    for power, link in ((0, "identity"), (1, "log"), (1.5, "log"), (2, "log"), (3, "log")):
        add(f"TweedieRegressor[power={power},{link}]", TweedieRegressor(power=power, link=link), d.y_reg)
    add("LogisticRegression[binary]", LogisticRegression(), d.y_binary)
    # A search over a regressor with a splitter object and a named scoring holds both.
    cv = KFold(2, shuffle=True, random_state=0)
    search = GridSearchCV(Ridge(), {"alpha": [0.1, 1.0]}, cv=cv, scoring="neg_mean_squared_error")
    add("GridSearchCV[Ridge,KFold,scoring]", search, d.y_reg)
    # Neighbour searches hold the tree and distance metric their settings pick.
    add("KNeighborsClassifier[ball_tree]", KNeighborsClassifier(algorithm="ball_tree"), d.y_class)
    for metric, metric_extra in (("manhattan", {}), ("chebyshev", {}), ("minkowski", {"p": 3}), ("cosine", {})):
        add(f"KNeighborsClassifier[{metric}]", KNeighborsClassifier(metric=metric, **metric_extra), d.y_class)

    # The README's models: a categorical HistGradientBoosting (it holds functools.partial(check_array, ...)), a
    # Pipeline with a ColumnTransformer and a classifier, and the ColumnTransformer alone.
    def categorical() -> Specimen:
        cat = frame.assign(contract=frame["contract"].astype("category"))
        hgb = HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=10, random_state=0)
        return Specimen("HistGradientBoostingClassifier[categorical]", hgb.fit(cat, d.y_class), cat)

    def pipeline() -> Specimen:
        pipe = Pipeline([("pre", preprocessor()), ("clf", LogisticRegression(max_iter=200))])
        return Specimen("Pipeline[ColumnTransformer,LogisticRegression]", pipe.fit(frame, d.y_class), frame)

    makers["HistGradientBoostingClassifier[categorical]"] = categorical
    makers["Pipeline[ColumnTransformer,LogisticRegression]"] = pipeline
    makers["ColumnTransformer[alone]"] = lambda: Specimen("ColumnTransformer[alone]", preprocessor().fit(frame), frame)
    return makers


def variant_names() -> list[str]:
    """The names of the variants (see :func:`variant`)."""
    return list(_variant_makers(data()))


def variant(name: str, d: Data | None = None) -> Specimen:
    """Fit the variant called ``name`` (one of :func:`variant_names`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _variant_makers(d if d is not None else data())[name]()


def variants(d: Data | None = None) -> Iterator[Specimen]:
    """Every variant, fitted."""
    d = d if d is not None else data()
    for name in _variant_makers(d):
        yield variant(name, d)


def scorers() -> Iterator[Specimen]:
    """The scorer of every ``scoring=`` name: what a search or threshold tuner fitted with it holds."""
    from sklearn.metrics import get_scorer, get_scorer_names

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in get_scorer_names():
            yield Specimen(f"scorer[{name}]", get_scorer(name), None)


def names() -> list[str]:
    """Every estimator class name of :func:`sklearn.utils.all_estimators`, sorted."""
    from sklearn.utils import all_estimators

    return sorted(name for name, _ in all_estimators())


def specimens(d: Data | None = None) -> Iterator[Specimen | tuple[str, str]]:
    """Every estimator's specimen, then the variants; ``(name, reason)`` for an estimator that cannot be fitted."""
    d = d if d is not None else data()
    for name in names():
        try:
            yield estimator(name, d)
        except Unfittable as exc:
            yield (name, str(exc))
    yield from variants(d)
    yield from scorers()
