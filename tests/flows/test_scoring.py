"""score-batch: every prediction stamped with its version, traced back to the lineage and the training data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from prefect_model_registry.flows import scoring
from prefect_model_registry.flows.cli import app
from prefect_model_registry.flows.core.approval import ApprovalPolicy
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.core.training import signature
from prefect_model_registry.flows.errors import DatasetError
from prefect_model_registry.flows.pipeline import retrain
from prefect_model_registry.flows.scoring import STAMPS, score_batch, score_file
from prefect_model_registry.registry import Registry, VersionInfo
from tests.flows.conftest import DATA, task_attempts

pytestmark = pytest.mark.usefixtures("prefect_api")

CHURN = DATA / "churn.csv"


@pytest.fixture
def production(tmp_path: Path, model_name: str) -> str:
    registry = str(tmp_path / "registry")
    cfg = RetrainConfig(
        model_name=model_name,
        dataset_uri=str(CHURN),
        dataset="churn",
        target="churned",
        registry=registry,
        approval=ApprovalPolicy(required_for=[]),
    )
    assert retrain(cfg, return_state=True).is_completed()
    return registry


def _pmr(registry: str, *args: str):
    return CliRunner().invoke(app, ["--registry", registry, *args])


def test_every_row_is_stamped_and_traces_back_to_the_version(production: str, model_name: str, tmp_path: Path) -> None:
    batch = pd.read_csv(CHURN).drop(columns=["churned"]).head(200)
    batch.to_csv(tmp_path / "batch.csv", index=False)
    out = tmp_path / "scored" / "batch.csv"
    state = score_batch(
        f"models:/{model_name}@production", str(tmp_path / "batch.csv"), str(out), production, return_state=True
    )
    assert state.is_completed(), state.message
    reg = Registry.open(production)
    mv = reg.get_version(model_name, 1)
    assert [c["name"] for c in mv.signature] == list(batch.columns)  # the input signature recorded at registration
    scored = pd.read_csv(out)
    assert len(scored) == 200 and set(STAMPS) <= set(scored.columns)
    assert set(scored["pmr_version"]) == {1} and set(scored["pmr_artifact_sha256"]) == {mv.artifact.sha256}
    assert set(scored["prediction"]) <= {0, 1} and scored["prediction_score"].between(0, 1).all()
    # A binary model: a probability column per class too, and prediction_score is the positive class's.
    assert list(scored["prediction_score"]) == list(scored["proba_1"])
    np.testing.assert_allclose(scored["proba_0"] + scored["proba_1"], 1.0, atol=1e-9)
    (run,) = reg.scoring_runs(model_name, 1)
    assert run.data["rows"] == 200 and run.run_id == scored["pmr_scoring_run"][0] == str(
        state.state_details.flow_run_id
    )

    listed = _pmr(production, "--json", "predictions", model_name)
    assert listed.exit_code == 0 and json.loads(listed.output)[0]["output_uri"] == str(out)
    explained = _pmr(production, "--json", "explain-prediction", str(out), "--row", "7")
    facts = json.loads(explained.output)
    assert explained.exit_code == 0 and facts["model"] == f"models:/{model_name}/1" and facts["scoring_recorded"]
    assert facts["trained_on"] == str(CHURN) and facts["training_data_restorable"]
    restored = tmp_path / "restored.csv"
    assert _pmr(production, "dataset", model_name, "1", "-o", str(restored)).exit_code == 0
    assert restored.read_bytes() == CHURN.read_bytes()


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_input_that_does_not_match_the_signature_is_refused_with_the_columns_named(
    production: str, model_name: str, tmp_path: Path, change: str
) -> None:
    batch = pd.read_csv(CHURN).drop(columns=["churned"]).head(20)
    batch = batch.drop(columns=["contract_type"]) if change == "missing" else batch.assign(region="eu")
    batch.to_csv(tmp_path / "batch.csv", index=False)
    out = tmp_path / "out.csv"
    state = score_batch(f"models:/{model_name}/1", str(tmp_path / "batch.csv"), str(out), production, return_state=True)
    assert state.is_failed() and ("contract_type" if change == "missing" else "region") in state.message
    assert not out.exists() and Registry.open(production).scoring_runs(model_name) == []
    assert task_attempts(state) == {"_score": 1}  # a refusal of bad input is not retried: it would fail the same


#: Class labels that are not column names as they stand (a space, a dash): sanitised to proba_<label>.
IRIS_LABELS = np.array(["Iris setosa", "iris-versicolor", "virginica"])


def _iris(extra: dict[str, np.ndarray] | None = None, labels: np.ndarray = IRIS_LABELS) -> tuple[pd.DataFrame, Any]:
    """Iris features (plus ``extra`` columns) and a real LogisticRegression fitted on them with ``labels``."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    X = X.assign(**(extra or {}))
    return X, LogisticRegression(max_iter=1000).fit(X, labels[y.to_numpy()])


def _register(registry: str, name: str, X: pd.DataFrame, model: Any) -> None:
    Registry.open(registry).register_model(name, model, VersionInfo(signature=signature(X)), actor="pytest")


def test_a_multiclass_model_writes_one_probability_column_per_class(
    tmp_path: Path, model_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = str(tmp_path / "registry")
    X, model = _iris()
    _register(registry, model_name, X, model)
    batch = X.sample(40, random_state=3)
    batch.to_csv(tmp_path / "batch.csv", index=False)
    out = tmp_path / "scored.csv"
    state = score_batch(f"models:/{model_name}/1", str(tmp_path / "batch.csv"), str(out), registry, return_state=True)
    assert state.is_completed(), state.message

    scored = pd.read_csv(out)
    proba = ["proba_Iris_setosa", "proba_iris_versicolor", "proba_virginica"]
    assert [c for c in scored.columns if c.startswith("proba_")] == proba
    assert "prediction_score" not in scored.columns  # one score column only for a binary model
    np.testing.assert_allclose(scored[proba].sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(scored[proba].to_numpy(), model.predict_proba(batch), rtol=1e-9, atol=1e-12)
    assert list(scored["prediction"]) == list(model.predict(batch))
    # explain-prediction shows the row's probabilities beside the prediction.
    explained = _pmr(registry, "--json", "explain-prediction", str(out), "--row", "5")
    assert explained.exit_code == 0, explained.output
    facts = json.loads(explained.output)
    assert facts["probabilities"] == pytest.approx(dict(zip(proba, scored.loc[5, proba], strict=True)))
    human = _pmr(registry, "explain-prediction", str(out), "--row", "5").output
    assert f"probabilities Iris_setosa={scored.loc[5, proba[0]]:.4g}, iris_versicolor=" in human


def test_a_probability_column_that_clashes_is_refused_before_anything_is_written(
    tmp_path: Path, model_name: str
) -> None:
    registry = str(tmp_path / "registry")
    # A feature that happens to be called what a class's probability column would be.
    X, model = _iris({"proba_virginica": np.linspace(0, 1, 150)})
    _register(registry, model_name, X, model)
    X.head(10).to_csv(tmp_path / "batch.csv", index=False)
    out = tmp_path / "scored.csv"
    state = score_batch(f"models:/{model_name}/1", str(tmp_path / "batch.csv"), str(out), registry, return_state=True)
    assert state.is_failed() and "proba_virginica" in str(state.message) and "input column" in str(state.message)
    assert not out.exists() and Registry.open(registry).scoring_runs(model_name) == []
    with pytest.raises(scoring.ScoringColumnClash):
        score_file(Registry.open(registry), f"models:/{model_name}/1", str(tmp_path / "batch.csv"), str(out))
    assert not out.exists()

    # Two labels that sanitise to the same column name: refused too, naming both.
    other = f"{model_name}-labels"
    X, model = _iris(labels=np.array(["a b", "a-b", "c"]))
    _register(registry, other, X, model)
    X.head(10).to_csv(tmp_path / "plain.csv", index=False)
    with pytest.raises(scoring.ScoringColumnClash, match=r"'a b'.*'a-b'"):
        score_file(Registry.open(registry), f"models:/{other}/1", str(tmp_path / "plain.csv"), str(out))
    assert not out.exists() and Registry.open(registry).scoring_runs(other) == []


@pytest.mark.parametrize(
    ("label", "column"),
    [("Iris setosa", "proba_Iris_setosa"), (1, "proba_1"), ("é/x", "proba___x"), (True, "proba_True")],
)
def test_the_probability_column_name_rule(label: object, column: str) -> None:
    assert scoring.proba_column(label) == column


def test_an_output_location_of_another_scheme_is_refused_not_written_as_a_local_path(
    tmp_path: Path, model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = str(tmp_path / "registry")
    X, model = _iris()
    _register(registry, model_name, X, model)
    X.head(5).to_csv(tmp_path / "batch.csv", index=False)
    monkeypatch.chdir(tmp_path)  # the old code wrote 'gs://b/out.csv' to ./gs:/b/out.csv
    with pytest.raises(DatasetError, match=r"output_uri: cannot write gs://b/out\.csv"):
        score_file(Registry.open(registry), f"models:/{model_name}/1", "batch.csv", "gs://b/out.csv")
    assert not (tmp_path / "gs:").exists() and Registry.open(registry).scoring_runs(model_name) == []
