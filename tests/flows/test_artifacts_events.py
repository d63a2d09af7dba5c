"""The artifacts and events a run publishes, read back through the Prefect client."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefect_model_registry.flows.core.approval import ApprovalPolicy
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.lifecycle import rollback_model
from prefect_model_registry.flows.pipeline import retrain
from tests.flows.conftest import BATCH1, BATCH2, model_events

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_artifacts_and_events_are_published(tmp_path: Path, model_name: str) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    location = str(tmp_path / "registry")
    no_approval = ApprovalPolicy(required_for=[])
    retrain(RetrainConfig(model_name=model_name, dataset_uri=BATCH1, registry=location, approval=no_approval))
    state = retrain(
        RetrainConfig(model_name=model_name, dataset_uri=BATCH2, registry=location, approval=no_approval),
        return_state=True,
    )
    rollback_model(model_name=model_name, reason="test", registry=location)

    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    by_key = {a.key: a for a in artifacts}
    assert {
        f"{model_name}-model-card",
        f"{model_name}-champion-challenger",
        f"{model_name}-data-quality",
        "registry-overview",
        f"{model_name}-manifest",
        f"{model_name}-artifact",
    } <= set(by_key)
    card = by_key[f"{model_name}-model-card"].data
    assert f"# Model card: {model_name} v2" in card and "| roc_auc |" in card and "Parent version:** v1" in card
    assert "PASSED" in by_key[f"{model_name}-data-quality"].data
    assert by_key[f"{model_name}-champion-challenger"].type == "table"
    assert "roc_auc" in by_key[f"{model_name}-champion-challenger"].data
    overview = by_key["registry-overview"].data
    assert model_name in overview and "v2" in overview
    assert f"models/{model_name}/versions/0000000002.json" in by_key[f"{model_name}-manifest"].data

    want = {"model.registered", "model.promoted", "model.archived", "model.rolled-back"}
    assert want <= model_events(model_name, want)
