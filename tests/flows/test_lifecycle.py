"""Promote, archive, roll back and decide as flows of their own; a retried registration task."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefect_model_registry.flows.core.approval import ApprovalPolicy
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.lifecycle import archive_model, decide_model, promote_model, rollback_model
from prefect_model_registry.flows.pipeline import retrain
from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.store.local import LocalStore
from tests.flows.conftest import BATCH1, BATCH2

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def two_versions(tmp_path: Path, model_name: str) -> str:
    """v1 in production, v2 staged (approval timed out)."""
    location = str(tmp_path / "registry")
    assert retrain(
        RetrainConfig(
            model_name=model_name,
            dataset_uri=BATCH1,
            registry=location,
            actor="ci-bot",
            approval=ApprovalPolicy(required_for=[]),
        ),
        return_state=True,
    ).is_completed()
    retrain(
        RetrainConfig(
            model_name=model_name,
            dataset_uri=BATCH2,
            registry=location,
            actor="ci-bot",
            approval=ApprovalPolicy(timeout_seconds=1, poll_interval_seconds=1),
        ),
        return_state=True,
    )
    assert Registry.open(location).state(model_name).stage_of(2) == "staging"
    return location


def test_promote_then_rollback_flows(two_versions: str, model_name: str) -> None:
    reg = Registry.open(two_versions)
    out = promote_model(
        model_name=model_name,
        version=2,
        reason="manual release",
        aliases=["canary"],
        registry=two_versions,
        actor="ops",
    )
    assert out["archived"] == [1] and reg.state(model_name).production == 2
    assert reg.state(model_name).aliases["canary"] == 2
    back = rollback_model(model_name=model_name, reason="error rate up", registry=two_versions, actor="oncall")
    assert back == {"from": 2, "to": 1, "aliases": ["canary"]}
    rolled = [e for e in reg.history(model_name) if e.type == "rolled_back"][-1]
    assert (rolled.actor, rolled.reason) == ("oncall", "error rate up")
    st = reg.state(model_name)
    assert st.production == 1 and st.aliases == {"champion": 1, "canary": 1}


def test_promoting_to_production_moves_champion_by_default(two_versions: str, model_name: str) -> None:
    promote_model(model_name=model_name, version=2, reason="release", registry=two_versions)
    assert Registry.open(two_versions).state(model_name).aliases == {"champion": 2}


def test_archive_flow(two_versions: str, model_name: str) -> None:
    archive_model(model_name=model_name, version=2, reason="superseded", registry=two_versions)
    assert Registry.open(two_versions).state(model_name).stage_of(2) == "archived"


def test_refused_promotion_fails_the_flow_and_changes_nothing(two_versions: str, model_name: str) -> None:
    reg = Registry.open(two_versions)
    before = reg.state(model_name)
    state = promote_model(
        model_name=model_name, version=1, stage="production", registry=two_versions, return_state=True
    )
    assert state.is_failed() and "already in production" in state.message
    assert reg.state(model_name) == before


def test_decide_flow_after_a_timeout(two_versions: str, model_name: str) -> None:
    reg = Registry.open(two_versions)
    with pytest.raises(Exception, match="four-eyes"):
        decide_model(
            model_name=model_name, version=2, approve=True, reviewer="ci-bot", four_eyes=True, registry=two_versions
        )
    out = decide_model(
        model_name=model_name, version=2, approve=True, reviewer="gina", comment="late approval", registry=two_versions
    )
    assert out["stage"] == "production" and reg.state(model_name).production == 2
    events = reg.history(model_name)
    # champion moves in the promotion's own event: the alias the policy protects is covered by its approval.
    assert [e.type for e in events][-3:] == ["approval_timed_out", "approved", "stage_changed"]
    assert (events[-2].actor, events[-2].reason) == ("gina", "late approval")
    assert (events[-1].actor, events[-1].data["to"], events[-1].data["aliases"]) == ("gina", "production", ["champion"])
    assert reg.state(model_name).aliases["champion"] == 2


def test_retried_registration_task_does_not_create_a_second_version(
    tmp_path: Path, model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_put = LocalStore.put
    failures = {"left": 1}

    def flaky_put(self, key, data, **kwargs):  # the first attempt dies after its manifest landed
        if f"models/{model_name}/events/" in key and failures["left"] and b'"registered"' in data:
            failures["left"] -= 1
            raise OSError("injected: disk went away while logging the registration")
        return real_put(self, key, data, **kwargs)

    monkeypatch.setattr(LocalStore, "put", flaky_put)
    location = str(tmp_path / "registry")
    state = retrain(
        RetrainConfig(
            model_name=model_name, dataset_uri=BATCH1, registry=location, approval=ApprovalPolicy(required_for=[])
        ),
        return_state=True,
    )
    assert state.is_completed(), state.message
    assert failures["left"] == 0  # the fault fired
    reg = Registry.open(location)
    assert reg.latest_version(model_name) == 1
    assert [e.type for e in reg.history(model_name)].count("registered") == 1
    assert reg.state(model_name).production == 1
