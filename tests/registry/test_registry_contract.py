"""The registry's behaviour, run against both backends."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from prefect_model_registry.registry import Lineage, Registry, VersionInfo
from prefect_model_registry.registry.errors import (
    AliasNotFound,
    ApprovalRefused,
    IdempotencyConflict,
    InvalidMetadata,
    InvalidName,
    InvalidTransition,
    ModelNotFound,
    NothingToRollBack,
    PromotionBlocked,
    StoreError,
    VersionNotFound,
)


@pytest.fixture(scope="module")
def model():
    X, y = load_iris(return_X_y=True)
    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y), X


def _reg3(reg: Registry) -> None:
    for i in range(3):
        reg.register("churn", f"model-{i}".encode(), VersionInfo(metrics={"auc": 0.8 + i / 100}), fmt="bytes")


def test_register_allocates_dense_versions_and_records_lineage(reg: Registry) -> None:
    info = VersionInfo(
        metrics={"accuracy": 0.93},
        params={"max_depth": 3, "class": "sklearn.tree.DecisionTreeClassifier"},
        tags={"team": "risk"},
        description="first",
        lineage=Lineage(
            dataset_uri="s3://data/x.csv",
            dataset_fingerprint="sha256:ab",
            code_version="abc123",
            flow_name="train",
            flow_run_id="run-1",
            deployment="nightly",
            parent_version=None,
        ),
    )
    v1 = reg.register("churn", b"bytes-1", info, fmt="bytes", actor="alice")
    v2 = reg.register("churn", b"bytes-2", fmt="bytes")
    assert (v1.version, v2.version) == (1, 2)
    got = reg.get_version("churn", 1)
    assert got == v1
    assert got.lineage.flow_run_id == "run-1" and got.created_by == "alice" and got.params["max_depth"] == 3
    assert got.artifact.sha256 == __import__("hashlib").sha256(b"bytes-1").hexdigest()
    assert [e.type for e in reg.history("churn")] == ["registered", "registered"]
    assert reg.models() == ["churn"]
    assert reg.latest_version("churn") == 2
    assert [mv.version for mv in reg.versions("churn")] == [2, 1]
    assert [mv.version for mv in reg.versions("churn", limit=1)] == [2]


def test_sklearn_model_roundtrip_through_skops(reg: Registry, model) -> None:
    est, X = model
    mv = reg.register_model("iris", est, VersionInfo(metrics={"accuracy": 0.97}))
    assert mv.artifact.format == "skops"
    loaded = reg.load("models:/iris/1")
    assert (loaded.predict(X) == est.predict(X)).all()


def test_stage_lifecycle_and_atomic_promotion(reg: Registry) -> None:
    _reg3(reg)
    reg.promote("churn", 1, "staging", reason="gates passed")
    reg.promote("churn", 1, "production", reason="approved", actor="bob", run_id="r1")
    assert reg.resolve("models:/churn@production").version == 1
    reg.promote("churn", 2, "staging")
    event = reg.promote("churn", 2, "production", reason="better auc")
    assert event.data["archived"] == [1]
    state = reg.state("churn")
    assert state.production == 2 and state.stage_of(1) == "archived"
    assert state.version_in("staging") == []
    with pytest.raises(InvalidTransition):
        reg.promote("churn", 3, "production")  # must be staged first
    with pytest.raises(InvalidTransition):
        reg.promote("churn", 2, "production")  # already there
    with pytest.raises(InvalidTransition):
        reg.promote("churn", 1, "production")  # archived -> production only by rollback
    assert {e.actor for e in reg.history("churn")} == {"pytest", "bob"}
    promoted = [e for e in reg.history("churn") if e.type == "stage_changed" and e.data["to"] == "production"]
    assert next((e.version, e.actor, e.reason) for e in promoted) == (1, "bob", "approved")


def test_through_staging_is_one_event_with_the_checks_of_both_steps(reg: Registry) -> None:
    _reg3(reg)
    reg.promote("churn", 1, "staging")
    reg.promote("churn", 1, "production")
    seq = reg.state("churn").seq
    event = reg.promote("churn", 2, "production", through_staging=True, reason="one call")
    assert (event.seq, event.data["from"], event.data["via"], event.data["to"]) == (
        seq + 1,
        "none",
        "staging",
        "production",
    )
    assert event.data["archived"] == [1] and "none -> staging -> production" in str(event)
    state = reg.state("churn")
    assert (state.production, state.stage_of(1), state.seq) == (2, "archived", seq + 1)
    with pytest.raises(InvalidTransition, match="not to archived"):
        reg.promote("churn", 3, "archived", through_staging=True)
    with pytest.raises(InvalidTransition, match="from production to staging"):
        reg.promote("churn", 2, "production", through_staging=True)  # production cannot be staged again
    # A staged version simply moves on; an archived one goes back through staging (not a rollback in disguise).
    reg.promote("churn", 3, "staging")
    assert reg.promote("churn", 3, "production", through_staging=True).data.get("via") is None
    assert reg.promote("churn", 2, "production", through_staging=True).data["from"] == "archived"


def test_through_staging_keeps_gates_and_each_stage_approval(reg: Registry) -> None:
    from prefect_model_registry.registry import ApprovalRules
    from prefect_model_registry.registry.errors import ApprovalRequired

    _reg3(reg)
    reg.record_report("churn", 1, "thresholds", {"auc": 0.1}, passed=False)
    with pytest.raises(PromotionBlocked):
        reg.promote("churn", 1, "production", through_staging=True)
    reg.set_policy("churn", ApprovalRules(stages=["staging"], first_version_exempt=False))
    before = reg.state("churn").seq
    with pytest.raises(ApprovalRequired, match="enter staging"):
        reg.promote("churn", 2, "production", through_staging=True)  # staging's approval is not skipped
    assert reg.state("churn").seq == before and reg.state("churn").stage_of(2) == "none"
    reg.record_decision("churn", 2, approved=True, reviewer="alice", target_stage="staging")
    assert reg.state("churn").approvals[2] == ["staging"]
    assert reg.promote("churn", 2, "production", through_staging=True).data["via"] == "staging"


def test_aliases_move_and_resolve(reg: Registry) -> None:
    _reg3(reg)
    reg.set_alias("churn", "champion", 1)
    reg.set_alias("churn", "canary", 1)
    assert reg.resolve("models:/churn@champion").version == 1
    event = reg.set_alias("churn", "champion", 3, reason="new champion")
    assert event is not None and event.data["previous"] == 1
    assert reg.set_alias("churn", "champion", 3) is None  # no-op, no event
    assert reg.state("churn").aliases == {"champion": 3, "canary": 1}
    reg.remove_alias("churn", "canary")
    with pytest.raises(AliasNotFound):
        reg.resolve("churn@canary")
    with pytest.raises(InvalidName):
        reg.set_alias("churn", "production", 1)


def test_rollback_restores_previous_production(reg: Registry) -> None:
    _reg3(reg)
    with pytest.raises(NothingToRollBack):
        reg.rollback("churn", reason="nothing yet")
    for v in (1, 2, 3):
        reg.promote("churn", v, "staging")
        reg.promote("churn", v, "production")
    event = reg.rollback("churn", reason="v3 misbehaves", actor="oncall")
    assert (event.data["from"], event.data["to"], event.actor) == (3, 2, "oncall")
    st = reg.state("churn")
    assert st.production == 2 and st.stage_of(3) == "archived"
    reg.rollback("churn", reason="v2 too")
    assert reg.state("churn").production == 1
    with pytest.raises(NothingToRollBack):
        reg.rollback("churn", reason="nothing before v1")


def test_history_answers_what_was_in_production_at_time_t(reg: Registry) -> None:
    _reg3(reg)
    reg.promote("churn", 1, "staging")
    reg.promote("churn", 1, "production")
    t1 = datetime.now(UTC)
    reg.promote("churn", 2, "staging")
    reg.promote("churn", 2, "production")
    assert reg.state_at("churn", t1).production == 1
    assert reg.state_at("churn", datetime.now(UTC)).production == 2
    assert reg.state_at("churn", datetime(2000, 1, 1, tzinfo=UTC)).production is None


def test_registration_is_idempotent_on_key(reg: Registry, model) -> None:
    est, _ = model
    info = VersionInfo(metrics={"accuracy": 0.9})
    a = reg.register_model("iris", est, info, operation_key="flow-run-1/register")
    b = reg.register_model("iris", est, info, operation_key="flow-run-1/register")  # skops bytes differ
    assert a.version == b.version == 1
    assert reg.latest_version("iris") == 1
    assert [e.type for e in reg.history("iris")] == ["registered"]
    with pytest.raises(IdempotencyConflict):
        reg.register_model("iris", est, VersionInfo(metrics={"accuracy": 0.1}), operation_key="flow-run-1/register")
    assert reg.register_model("iris", est, info, operation_key="flow-run-2/register").version == 2


def test_failed_gate_blocks_promotion_until_passed(reg: Registry) -> None:
    _reg3(reg)
    reg.promote("churn", 1, "staging")
    report = {"gate": "thresholds", "passed": False, "checks": [{"name": "accuracy >= 0.9", "passed": False}]}
    event = reg.record_report("churn", 1, "thresholds", report, passed=False)
    assert "accuracy >= 0.9" in event.reason
    with pytest.raises(PromotionBlocked):
        reg.promote("churn", 1, "production")
    assert reg.reports("churn", 1)["thresholds"]["passed"] is False
    reg.record_report("churn", 1, "thresholds", {**report, "passed": True, "checks": []}, passed=True)
    reg.promote("churn", 1, "production")
    assert reg.state("churn").production == 1


def test_reports_given_at_registration_are_stored_and_block(reg: Registry) -> None:
    dq = {"gate": "data_quality", "passed": True, "checks": []}
    th = {"gate": "thresholds", "passed": False, "checks": []}
    reg.register("m", b"x", VersionInfo(reports={"data_quality": dq, "thresholds": th}), fmt="bytes")
    assert reg.reports("m", 1) == {"data_quality": dq, "thresholds": th}
    reg.promote("m", 1, "staging")
    with pytest.raises(PromotionBlocked):
        reg.promote("m", 1, "production")


def test_decisions_and_four_eyes(reg: Registry) -> None:
    reg.register("m", b"x", fmt="bytes", actor="alice")
    reg.promote("m", 1, "staging")
    with pytest.raises(ApprovalRefused):
        reg.record_decision("m", 1, approved=True, reviewer="alice", four_eyes=True)
    with pytest.raises(ApprovalRefused):
        reg.record_decision("m", 1, approved=True, reviewer="mallory", allowed_reviewers={"bob"})
    with pytest.raises(InvalidMetadata):
        reg.record_decision("m", 1, approved=False, reviewer="bob", comment="  ")
    rejected = reg.record_decision("m", 1, approved=False, reviewer="bob", comment="AUC too low", run_id="r9")
    assert (rejected.type, rejected.actor, rejected.reason, rejected.run_id) == (
        "rejected",
        "bob",
        "AUC too low",
        "r9",
    )
    with pytest.raises(PromotionBlocked):
        reg.promote("m", 1, "production")
    reg.record_decision("m", 1, approved=True, reviewer="carol", comment="fixed", four_eyes=True)
    reg.promote("m", 1, "production")
    reg.record_timeout("m", 1, reason="no decision in 1h")
    assert [e.type for e in reg.history("m")][-3:] == ["approved", "stage_changed", "approval_timed_out"]


def test_lineage_follows_parents(reg: Registry) -> None:
    reg.register("m", b"1", fmt="bytes")
    reg.register("m", b"2", VersionInfo(lineage=Lineage(parent_version=1)), fmt="bytes")
    reg.register("m", b"3", VersionInfo(lineage=Lineage(parent_version=2)), fmt="bytes")
    assert [mv.version for mv in reg.lineage("m", 3)] == [3, 2, 1]


def test_unknown_things_raise_lookup_errors(reg: Registry) -> None:
    with pytest.raises(ModelNotFound):
        reg.resolve("models:/ghost/1")
    with pytest.raises(ModelNotFound):
        reg.resolve("ghost@production")
    reg.register("m", b"1", fmt="bytes")
    with pytest.raises(VersionNotFound):
        reg.get_version("m", 7)
    with pytest.raises(AliasNotFound):
        reg.resolve("m@production")
    with pytest.raises(LookupError):
        reg.resolve("m@champion")
    assert reg.resolve("models:/m/latest").version == 1


def test_nonfinite_metrics_are_refused(reg: Registry) -> None:
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(InvalidMetadata):
            reg.register("m", b"1", VersionInfo(metrics={"auc": bad}), fmt="bytes")
    assert list(reg.store.list("")) == []


def test_retry_after_a_crash_between_manifest_and_event_logs_it_once(reg: Registry, monkeypatch) -> None:
    real_put = type(reg.store).put
    failures = {"left": 1}

    def flaky_put(self, key, data, **kwargs):
        if "/events/" in key and failures["left"]:
            failures["left"] -= 1
            raise StoreError("injected: connection reset while appending the event")
        return real_put(self, key, data, **kwargs)

    monkeypatch.setattr(type(reg.store), "put", flaky_put)
    info = VersionInfo(metrics={"auc": 0.9})
    with pytest.raises(StoreError):
        reg.register("m", b"model", info, fmt="bytes", operation_key="run-7/register")
    assert reg.get_version("m", 1).idempotency_key == "run-7/register"  # the manifest landed
    again = reg.register("m", b"model", info, fmt="bytes", operation_key="run-7/register")
    assert again.version == 1 and reg.latest_version("m") == 1
    assert [(e.type, e.version) for e in reg.history("m")] == [("registered", 1)]
    assert reg.register("m", b"model", info, fmt="bytes", operation_key="run-7/register").version == 1
    assert len(reg.history("m")) == 1


def test_advisory_reports_are_kept_but_do_not_block(reg: Registry) -> None:
    drift = {"gate": "drift", "passed": False, "advisory": True, "checks": []}
    reg.register("m", b"x", VersionInfo(reports={"drift": drift}), fmt="bytes")
    assert reg.reports("m", 1)["drift"]["passed"] is False
    assert reg.get_version("m", 1).reports["drift"].blocking is False
    reg.promote("m", 1, "staging")
    reg.promote("m", 1, "production")
    assert reg.state("m").production == 1


def test_recording_the_same_report_twice_logs_it_once(reg: Registry) -> None:
    reg.register("m", b"x", fmt="bytes")
    report = {"gate": "thresholds", "passed": True, "checks": []}
    assert reg.record_report("m", 1, "thresholds", report, passed=True) is not None
    assert reg.record_report("m", 1, "thresholds", report, passed=True) is None
    assert [e.type for e in reg.history("m")].count("validated") == 1
    assert reg.record_report("m", 1, "thresholds", {**report, "passed": False}, passed=False) is not None
