"""score-batch: every prediction stamped with its version, traced back to the lineage and the training data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from prefect_model_registry.flows.cli import app
from prefect_model_registry.flows.core.approval import ApprovalPolicy
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.pipeline import retrain
from prefect_model_registry.flows.scoring import STAMPS, score_batch
from prefect_model_registry.registry import Registry
from tests.flows.conftest import DATA

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
