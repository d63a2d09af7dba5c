"""Shared real data and real trained models for the validations tests (trained once per session)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

_FRAME = load_breast_cancer(as_frame=True).frame


@dataclass(frozen=True)
class Split:
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


@pytest.fixture
def bc_frame() -> pd.DataFrame:
    """A fresh copy per test, so corrupting it cannot leak into other tests."""
    return _FRAME.copy()


@pytest.fixture(scope="session")
def bc_split() -> Split:
    X, y = _FRAME.drop(columns="target"), _FRAME["target"]
    return Split(*train_test_split(X, y, test_size=0.25, stratify=y, random_state=0))


@pytest.fixture(scope="session")
def lr_model(bc_split: Split) -> Any:
    """The strong model: standard-scaled logistic regression (accuracy ~0.97)."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(bc_split.X_train, bc_split.y_train)


@pytest.fixture(scope="session")
def stump_model(bc_split: Split) -> Any:
    """The weak model: a depth-1 decision tree (clearly worse ROC AUC than the logistic regression)."""
    return DecisionTreeClassifier(max_depth=1, random_state=0).fit(bc_split.X_train, bc_split.y_train)
