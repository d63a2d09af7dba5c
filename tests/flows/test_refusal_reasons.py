"""A refused decision is answered with its own reason: the refusal of the input it gave, never another's."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefect_model_registry.flows.core.approval import ApprovalPolicy
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.pipeline import retrain
from prefect_model_registry.registry import Registry
from tests.flows.conftest import BATCH1, BATCH2, Background, wait_for_paused

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def first_version(tmp_path: Path, model_name: str) -> str:
    """A registry where v1 of ``model_name`` is in production (no approval needed for the first)."""
    location = str(tmp_path / "registry")
    config = RetrainConfig(
        model_name=model_name,
        dataset_uri=BATCH1,
        approval=ApprovalPolicy(required_for=[]),
        registry=location,
        actor="ci-bot",
    )
    state = retrain(config, return_state=True)
    assert state.is_completed(), state.message
    return location


def _pmr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from prefect_model_registry.flows.cli import main

    with pytest.raises(SystemExit) as info:
        main(list(args))
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out + out.err


def _resume(run_id: object, **decision: object) -> None:
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(run_id, run_input=decision)  # type: ignore[arg-type]


def test_two_refused_approvers_each_get_their_own_reason(
    first_version: str, model_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = ApprovalPolicy(poll_interval_seconds=1, timeout_seconds=180, reviewers=["alice"], max_attempts=5)
    config = RetrainConfig(
        model_name=model_name, dataset_uri=BATCH2, registry=first_version, actor="ci-bot", approval=policy
    )
    run = Background(retrain, config=config)
    r = ("--registry", first_version)
    wait_for_paused(model_name)
    code, out = _pmr(capsys, *r, "--actor", "mallory", "approve", model_name, "2", "--comment", "lgtm")
    assert code == 1 and "REFUSED" in out and "'mallory' is not an allowed reviewer" in out, out
    wait_for_paused(model_name, after=1)
    # The next refused approver is told about their own decision, not the one before it (whose refusal is the
    # newest line the run had logged when its pause came back).
    code, out = _pmr(capsys, *r, "--actor", "dana", "approve", model_name, "2", "--comment", "ship it")
    assert code == 1 and "REFUSED" in out, out
    assert "'dana' is not an allowed reviewer" in out and "mallory" not in out, out
    # A refusal given from the UI (no CLI involved) is never shown to the next CLI caller either.
    paused = wait_for_paused(model_name, after=2)
    _resume(paused.id, approve=True, reviewer="oscar", comment="from the UI")
    wait_for_paused(model_name, after=3)
    code, out = _pmr(capsys, *r, "--actor", "erin", "approve", model_name, "2", "--comment", "me too")
    assert code == 1 and "'erin' is not an allowed reviewer" in out and "oscar" not in out, out
    wait_for_paused(model_name, after=4)
    code, out = _pmr(capsys, *r, "--actor", "alice", "approve", model_name, "2", "--comment", "good")
    assert code == 0 and "took the decision" in out, out
    assert run.join().is_completed()
    reg = Registry.open(first_version)
    assert reg.state(model_name).production == 2
    refused = [e for e in reg.history(model_name) if e.type == "decision_refused"]
    assert [e.actor for e in refused] == ["mallory", "dana", "oscar", "erin"]
    assert all(repr(e.actor) in e.reason for e in refused)
    approved = [e for e in reg.history(model_name) if e.type == "approved"]
    assert [(e.actor, e.reason) for e in approved] == [("alice", "good")]
