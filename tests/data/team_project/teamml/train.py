"""The team's trainer: ``trainer: teamml.train:fit`` in a retraining config."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def fit(frame: pd.DataFrame, target: str, params: dict[str, Any]) -> Pipeline:
    """Scale and fit a logistic regression with ``params["C"]`` (the sweep's candidates vary it)."""
    X, y = frame.drop(columns=[target]), frame[target]
    model = LogisticRegression(C=float(params.get("C", 1.0)), max_iter=1000)
    return Pipeline([("scale", StandardScaler()), ("model", model)]).fit(X, y)
