"""The retraining pipeline end to end under a real Prefect API, real GX, real scikit-learn."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from prefect_model_registry.flows.core.approval import ApprovalPolicy
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.pipeline import retrain
from prefect_model_registry.registry import Registry
from prefect_model_registry.validations.policy import GatePolicy
from tests.flows.conftest import BATCH1, BATCH2, Background, model_events, task_attempts, wait_for_paused

pytestmark = pytest.mark.usefixtures("prefect_api")

NO_APPROVAL = ApprovalPolicy(required_for=[])


def fast_policy(**kw) -> ApprovalPolicy:
    return ApprovalPolicy(poll_interval_seconds=1, timeout_seconds=kw.pop("timeout_seconds", 120), **kw)


def _decide(*args: str):
    from typer.testing import CliRunner

    from prefect_model_registry.flows.cli import app

    return CliRunner().invoke(app, ["ci", "decide", *args])


def _resume(run, **decision) -> None:
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(run.id, run_input=decision)


@pytest.fixture
def first_version(tmp_path: Path, model_name: str) -> str:
    """A registry where v1 of ``model_name`` is in production (no approval needed for the first)."""
    location = str(tmp_path / "registry")
    state = retrain(
        RetrainConfig(
            model_name=model_name, dataset_uri=BATCH1, approval=NO_APPROVAL, registry=location, actor="ci-bot"
        ),
        return_state=True,
    )
    assert state.is_completed(), state.message
    return location


def test_happy_path_with_approval(first_version: str, model_name: str) -> None:
    reg = Registry.open(first_version)
    assert reg.state(model_name).production == 1
    run = Background(
        retrain,
        config=RetrainConfig(
            model_name=model_name, dataset_uri=BATCH2, registry=first_version, actor="ci-bot", approval=fast_policy()
        ),
    )
    paused = wait_for_paused(model_name)
    assert reg.state(model_name).stage_of(2) == "staging"  # staged while waiting
    _resume(paused, approve=True, reviewer="dana", comment="metrics hold up")
    state = run.join()
    assert state.is_completed(), state.message
    st = reg.state(model_name)
    assert st.production == 2 and st.stage_of(1) == "archived" and st.aliases == {"champion": 2}
    approved = [e for e in reg.history(model_name) if e.type == "approved"]
    assert [(e.version, e.actor, e.reason) for e in approved] == [(2, "dana", "metrics hold up")]
    promoted = [e for e in reg.history(model_name) if e.type == "stage_changed" and e.data["to"] == "production"]
    assert promoted[0].reason == "gates passed; no approval required for this stage by policy"  # v1
    assert promoted[1].reason == "gates passed; approved by dana"
    mv = reg.get_version(model_name, 2)
    assert mv.lineage.parent_version == 1 and mv.lineage.flow_run_id == str(paused.id)
    assert mv.lineage.dataset_fingerprint.startswith("sha256:") and mv.created_by == "ci-bot"
    assert mv.tags["pmr.registrant"] == "claimed"  # open-source Prefect names no creator: the actor is a claim
    assert set(reg.reports(model_name, 2)) >= {"data_quality", "thresholds", "champion_challenger"}
    assert reg.load(f"models:/{model_name}@production").predict(pd.read_csv(BATCH2).drop(columns="target")).size
    assert "model.approved" in model_events(model_name, {"model.approved"})


def test_rejection_promotes_nothing(first_version: str, model_name: str) -> None:
    run = Background(
        retrain,
        config=RetrainConfig(model_name=model_name, dataset_uri=BATCH2, registry=first_version, approval=fast_policy()),
    )
    _resume(wait_for_paused(model_name), approve=False, reviewer="erin", comment="wait for the Q4 data")
    state = run.join()
    assert state.is_failed() and "rejected by erin" in state.message
    reg = Registry.open(first_version)
    st = reg.state(model_name)
    assert st.production == 1 and st.stage_of(2) == "staging" and st.blocked[2] == ["rejected"]
    assert reg.history(model_name)[-1].type == "rejected"
    assert "model.rejected" in model_events(model_name, {"model.rejected"})


def test_invalid_decision_is_refused_and_run_stays_paused(first_version: str, model_name: str) -> None:
    run = Background(
        retrain,
        config=RetrainConfig(model_name=model_name, dataset_uri=BATCH2, registry=first_version, approval=fast_policy()),
    )
    paused = wait_for_paused(model_name)
    with pytest.raises(RuntimeError, match="comment"):
        _resume(paused, approve=False, reviewer="erin", comment="")  # a rejection needs a reason
    _resume(paused, approve=True, reviewer="erin", comment="")
    assert run.join().is_completed()


def test_timeout_leaves_version_staged(first_version: str, model_name: str) -> None:
    state = retrain(
        RetrainConfig(
            model_name=model_name, dataset_uri=BATCH2, registry=first_version, approval=fast_policy(timeout_seconds=2)
        ),
        return_state=True,
    )
    assert state.is_failed()  # Prefect words the state message of a pause timeout itself
    reg = Registry.open(first_version)
    assert reg.state(model_name).stage_of(2) == "staging" and reg.state(model_name).production == 1
    last = reg.history(model_name)[-1]
    assert last.type == "approval_timed_out" and "no decision within 2s; the version stays staging" in last.reason


def test_four_eyes_refuses_the_registrant(first_version: str, model_name: str) -> None:
    run = Background(
        retrain,
        config=RetrainConfig(
            model_name=model_name,
            dataset_uri=BATCH2,
            registry=first_version,
            actor="ci-bot",
            approval=fast_policy(four_eyes=True),
        ),
    )
    paused = wait_for_paused(model_name)
    # From the terminal, as a reviewer without a browser: the caller learns that the decision was refused.
    refused = _decide(str(paused.id), "--approve", "--reviewer", "ci-bot", "--comment", "self-approval")
    assert refused.exit_code == 1 and "REFUSED" in refused.output and "four-eyes" in refused.output, refused.output
    again = wait_for_paused(model_name, after=1)  # asked again, with the refusal in the description
    reg = Registry.open(first_version)
    assert reg.state(model_name).production == 1
    assert "approved" not in [e.type for e in reg.history(model_name)]
    # The refused decision is in the history: who tried, why it was refused, from which run.
    (refused,) = [e for e in reg.history(model_name) if e.type == "decision_refused"]
    assert (refused.version, refused.actor, refused.run_id) == (2, "ci-bot", str(paused.id))
    assert "four-eyes" in refused.reason and "REFUSED" in str(refused)
    accepted = _decide(str(again.id), "--approve", "--reviewer", "frank", "--comment", "second pair of eyes")
    assert accepted.exit_code == 0 and "accepted" in accepted.output, accepted.output
    assert run.join().is_completed()
    assert reg.state(model_name).production == 2


def test_data_quality_failure_registers_nothing(first_version: str, model_name: str, tmp_path: Path) -> None:
    bad = pd.read_csv(BATCH2)
    bad.loc[:40, "mean radius"] = None
    bad.loc[50:60, "target"] = 3
    path = tmp_path / "corrupted.csv"
    bad.to_csv(path, index=False)
    reg = Registry.open(first_version)
    before = {k: reg.store.get(k).data for k in reg.store.list(f"models/{model_name}/")}
    state = retrain(
        RetrainConfig(model_name=model_name, dataset_uri=str(path), registry=first_version, approval=NO_APPROVAL),
        return_state=True,
    )
    assert state.is_failed() and "data-quality gate failed" in state.message and "mean radius" in state.message
    after = {k: reg.store.get(k).data for k in reg.store.list(f"models/{model_name}/")}
    assert after == before


def test_threshold_failure_registers_but_blocks(first_version: str, model_name: str) -> None:
    state = retrain(
        RetrainConfig(
            model_name=model_name,
            dataset_uri=BATCH2,
            registry=first_version,
            approval=NO_APPROVAL,
            estimator="sklearn.dummy.DummyClassifier",
            preprocessing="none",
        ),
        return_state=True,
    )
    assert state.is_failed() and "blocked" in state.message
    reg = Registry.open(first_version)
    assert reg.latest_version(model_name) == 2 and reg.state(model_name).production == 1
    assert "gate:thresholds" in reg.state(model_name).blocked[2]
    # The verdict came with the version: in its manifest, in the same write that made it.
    assert "thresholds" in reg.get_version(model_name, 2).reports  # a ReportRef: hash-checked blob
    thresholds = reg.reports(model_name, 2)["thresholds"]
    assert not thresholds["passed"] and any("accuracy" in c["name"] and not c["passed"] for c in thresholds["checks"])
    assert "accuracy" in state.message


def test_champion_better_blocks(first_version: str, model_name: str) -> None:
    # A shallow tree passes the absolute floors on this data but loses to the logistic-regression champion.
    state = retrain(
        RetrainConfig(
            model_name=model_name,
            dataset_uri=BATCH2,
            registry=first_version,
            approval=NO_APPROVAL,
            gates=GatePolicy(min_improvement=0.0),
            estimator="sklearn.tree.DecisionTreeClassifier",
            params={"max_depth": 2, "random_state": 0},
        ),
        return_state=True,
    )
    assert state.is_failed()
    reg = Registry.open(first_version)
    assert reg.state(model_name).production == 1
    assert "gate:champion_challenger" in reg.state(model_name).blocked[2]


@pytest.mark.parametrize("drift_blocks", [False, True])
def test_drift_is_shown_and_blocks_only_when_asked(
    first_version: str, model_name: str, tmp_path: Path, drift_blocks: bool
) -> None:
    shifted = pd.read_csv(BATCH2)
    for column in ("mean radius", "mean perimeter", "mean area", "worst radius"):
        shifted[column] = shifted[column] * 1.3  # within the suite's ranges, but a clear shift
    path = tmp_path / "shifted.csv"
    shifted.to_csv(path, index=False)
    state = retrain(
        RetrainConfig(
            model_name=model_name,
            dataset_uri=str(path),
            registry=first_version,
            approval=NO_APPROVAL,
            gates=GatePolicy(advisory=[] if drift_blocks else ["drift"]),
        ),
        return_state=True,
    )
    reg = Registry.open(first_version)
    assert reg.reports(model_name, 2)["drift"]["passed"] is False
    if drift_blocks:
        assert state.is_failed() and "drift" in state.message
        assert reg.state(model_name).production == 1 and "gate:drift" in reg.state(model_name).blocked[2]
    else:
        assert state.is_completed(), state.message
        assert reg.state(model_name).production == 2


def test_a_first_model_goes_to_production_without_a_reviewer_unless_the_policy_says_so(
    tmp_path: Path, model_name: str
) -> None:
    registry = str(tmp_path / "registry")
    # Default policy: production needs a reviewer, but not for a model's first version (nothing to protect).
    state = retrain(
        RetrainConfig(
            model_name=model_name, dataset_uri=BATCH1, registry=registry, approval=fast_policy(timeout_seconds=3)
        ),
        return_state=True,
    )
    assert state.is_completed(), state.message
    reg = Registry.open(registry)
    assert reg.state(model_name).production == 1 and reg.policy(model_name).first_version_exempt
    strict = f"{model_name}-strict"
    state = retrain(
        RetrainConfig(
            model_name=strict,
            dataset_uri=BATCH1,
            registry=registry,
            approval=fast_policy(timeout_seconds=3, first_version_exempt=False),
        ),
        return_state=True,
    )
    assert state.is_failed()  # it paused for a reviewer, and nobody came
    assert reg.state(strict).production is None and reg.state(strict).stage_of(1) == "staging"


def test_drift_is_checked_when_every_run_reads_the_same_latest_csv(tmp_path: Path, model_name: str) -> None:
    # The nightly pattern: one path, overwritten with each day's data. The stored profile of v1's data is the
    # reference, whatever the file holds when v2 trains.
    latest = tmp_path / "latest.csv"
    latest.write_bytes(Path(BATCH1).read_bytes())
    registry = str(tmp_path / "registry")
    first = retrain(
        RetrainConfig(model_name=model_name, dataset_uri=str(latest), registry=registry, approval=NO_APPROVAL),
        return_state=True,
    )
    assert first.is_completed(), first.message
    shifted = pd.read_csv(BATCH2)
    for column in ("mean radius", "mean perimeter", "mean area", "worst radius"):
        shifted[column] = shifted[column] * 1.3
    shifted.to_csv(latest, index=False)
    second = retrain(
        RetrainConfig(model_name=model_name, dataset_uri=str(latest), registry=registry, approval=NO_APPROVAL),
        return_state=True,
    )
    assert second.is_completed(), second.message  # drift advises by default
    report = Registry.open(registry).reports(model_name, 2)["drift"]
    assert report["summary"].get("checked", True) and report["checks"]
    assert not report["passed"] and "mean radius" in report["summary"]["drifted_columns"]


def _pmr(capsys, *args: str) -> tuple[int, str]:
    from prefect_model_registry.flows.cli import main

    with pytest.raises(SystemExit) as info:
        main(list(args))
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out + out.err


def test_pmr_pending_and_approve_drive_the_waiting_run(first_version: str, model_name: str, capsys) -> None:
    import json

    r = ("--registry", first_version)
    run = Background(
        retrain,
        config=RetrainConfig(
            model_name=model_name,
            dataset_uri=BATCH2,
            registry=first_version,
            actor="ci-bot",
            approval=fast_policy(four_eyes=True),
        ),
    )
    paused = wait_for_paused(model_name)
    code, out = _pmr(capsys, *r, "--json", "pending", model_name)
    (waiting,) = json.loads(out)
    assert code == 0 and (waiting["version"], waiting["stage"], waiting["run_id"]) == (2, "production", str(paused.id))
    # The registrant tries to approve their own version: the waiting run refuses it, and says why.
    code, out = _pmr(capsys, *r, "--actor", "ci-bot", "approve", model_name, "2", "--comment", "mine")
    assert code == 1 and "REFUSED" in out and "four-eyes" in out, out
    wait_for_paused(model_name, after=1)
    code, out = _pmr(capsys, *r, "--actor", "dana", "approve", model_name, "2", "--comment", "metrics hold up")
    assert code == 0 and "took the decision" in out, out
    assert run.join().is_completed()
    reg = Registry.open(first_version)
    assert reg.state(model_name).production == 2
    # The same events as a decision in the UI: made by the run, with the reviewer's name and the run's id.
    approved = [e for e in reg.history(model_name) if e.type == "approved"]
    assert [(e.actor, e.reason, e.run_id) for e in approved] == [("dana", "metrics hold up", str(paused.id))]
    assert [e.actor for e in reg.history(model_name) if e.type == "decision_refused"] == ["ci-bot"]


def test_pmr_reject_drives_the_waiting_run(first_version: str, model_name: str, capsys) -> None:
    run = Background(
        retrain,
        config=RetrainConfig(model_name=model_name, dataset_uri=BATCH2, registry=first_version, approval=fast_policy()),
    )
    wait_for_paused(model_name)
    code, out = _pmr(
        capsys,
        "--registry",
        first_version,
        "--actor",
        "erin",
        "reject",
        model_name,
        "2",
        "--comment",
        "wait for the Q4 data",
    )
    assert code == 0 and "rejected by erin" in out, out
    assert run.join().is_failed()
    reg = Registry.open(first_version)
    assert reg.state(model_name).production == 1 and "rejected" in reg.state(model_name).blocked[2]


def test_a_dataset_that_cannot_be_read_fails_at_once_not_after_retries(tmp_path: Path, model_name: str) -> None:
    state = retrain(
        RetrainConfig(
            model_name=model_name,
            dataset_uri=str(tmp_path / "nowhere.csv"),
            approval=NO_APPROVAL,
            registry=str(tmp_path / "registry"),
        ),
        return_state=True,
    )
    assert state.is_failed() and "nowhere.csv" in state.message
    assert task_attempts(state) == {"load_dataset": 1}  # the same refusal every time: not retried (2 s, then 5 s)
