"""A flow's registration key cannot be pre-empted, and its retry returns the version it made (issue 27).

The key used to be ``<flow run id>:<name>:register``, predictable from the run id the UI shows: anyone could
register another model under it first, and the run adopted that version as its own. Now the key also binds the
registrant and the whole request (metrics, params, tags, description, dataset fingerprint), and the registry
refuses the key to another actor or other metadata.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import skops.io as sio
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from prefect_model_registry.flows.tasks import register_version
from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.errors import IdempotencyConflict

RUN = "6f1c2e2a-1111-4a4a-9b9b-0123456789ab"
INFO = VersionInfo(metrics={"accuracy": 0.97}, params={"C": 1.0}, description="retrained")


def fitted() -> LogisticRegression:
    X, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(X, y)


@pytest.fixture(autouse=True)
def in_a_flow_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT__RUNTIME__FLOW_RUN__ID", RUN)


def test_a_retried_registration_with_reserialised_bytes_returns_the_version(tmp_path: Path) -> None:
    location = str(tmp_path / "reg")
    first = register_version.fn(location, "iris", fitted(), INFO, "prefect:retrain")
    refit = fitted()  # the retry trains again: skops writes other bytes for the same model
    assert sio.dumps(refit) != Registry.open(location).load_bytes(first.uri)[1]
    again = register_version.fn(location, "iris", refit, INFO, "prefect:retrain")
    assert again.version == first.version and again.artifact.sha256 == first.artifact.sha256
    assert Registry.open(location).latest_version("iris") == 1


def test_a_key_predicted_from_the_run_id_does_not_substitute_the_model(tmp_path: Path) -> None:
    location = str(tmp_path / "reg")
    reg = Registry.open(location)
    # Someone who saw the run id registers their own bytes first, under the key the run used to use.
    X, y = load_iris(return_X_y=True)
    substitute = DummyClassifier(strategy="constant", constant=0).fit(X, y)
    planted = reg.register_model(
        "iris", substitute, INFO, actor="prefect:retrain", operation_key=f"{RUN}:iris:register"
    )
    mine = register_version.fn(location, "iris", fitted(), INFO, "prefect:retrain")
    assert mine.version != planted.version
    assert type(Registry.open(location).load(mine.uri)) is LogisticRegression


def test_the_run_key_taken_by_another_actor_is_a_conflict_not_an_adoption(tmp_path: Path) -> None:
    from prefect_model_registry.flows.tasks import registration_key

    location = str(tmp_path / "reg")
    key = registration_key("iris", INFO, "prefect:retrain")
    X, y = load_iris(return_X_y=True)
    planted = DummyClassifier(strategy="constant", constant=0).fit(X, y)  # same metadata, another actor's model
    Registry.open(location).register_model("iris", planted, INFO, actor="mallory", operation_key=key)
    with pytest.raises(IdempotencyConflict):
        register_version.fn(location, "iris", fitted(), INFO, "prefect:retrain")
