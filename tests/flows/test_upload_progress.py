"""A large model registered inside a flow shows its upload as a Prefect progress artifact (issue 30)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prefect import flow
from sklearn.linear_model import LinearRegression

from prefect_model_registry.flows.core.publish import UPLOAD_PROGRESS_MIN_BYTES, UploadProgress
from prefect_model_registry.flows.tasks import register_version
from prefect_model_registry.registry import Registry, VersionInfo

pytestmark = pytest.mark.usefixtures("prefect_api")


def _large_model() -> LinearRegression:
    """A fitted-looking linear model whose coefficients alone take ~9.6 MB (random: they do not compress)."""
    model = LinearRegression()
    model.coef_ = np.random.default_rng().random(1_200_000)
    model.intercept_ = 0.5
    model.n_features_in_ = model.coef_.shape[0]
    return model


@flow(name="register-large-model")
def _register_large(registry: str, name: str) -> int:
    model = _large_model()
    return register_version(registry, name, model, VersionInfo(metrics={"score": 1.0}), "pytest").version


def _progress_artifacts(run_id: object) -> list:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return [a for a in found if a.type == "progress"]


def test_large_registration_leaves_a_progress_artifact_at_100(tmp_path: Path, model_name: str) -> None:
    location = str(tmp_path / "registry")
    state = _register_large(location, model_name, return_state=True)
    assert state.is_completed(), state
    mv = Registry.open(location).get_version(model_name, 1)
    assert mv.artifact.size > UPLOAD_PROGRESS_MIN_BYTES
    artifacts = _progress_artifacts(state.state_details.flow_run_id)
    assert [a.key for a in artifacts] == [f"{model_name}-upload"]
    assert float(artifacts[0].data) == 100.0


@pytest.mark.filterwarnings("ignore:Artifact creation outside:FutureWarning")  # outside a run, on purpose
def test_an_unreachable_artifact_api_does_not_fail_the_upload() -> None:
    """With Prefect's API unreachable the callback gives up once, quietly, and the caller goes on."""
    import socket

    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{port}/api", PREFECT_CLIENT_MAX_RETRIES: 0}):
        progress = UploadProgress("m", min_bytes=10)  # the run's context (here: these settings) is taken now
        progress("uploading", 0, 100)
        progress("uploading", 100, 100)
    assert progress.failed and progress.artifact_id is None
