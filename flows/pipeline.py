"""The retraining pipeline: data quality -> train -> gates -> register -> stage -> approval -> production."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.runtime import flow_run

from flows import evidence, publish
from flows.approval import ApprovalPolicy, wait_for_decision
from flows.errors import ApprovalRejected, ApprovalTimedOut, GateFailed
from flows.lifecycle import promote_version
from flows.opkeys import operation_key
from flows.tasks import (
    check_data_quality,
    check_drift,
    current_champion,
    lineage_for,
    load_dataset,
    metric_gates,
    record_gate,
    register_version,
    run_actor,
    train,
)
from registry import Registry, VersionInfo
from registry.errors import ApprovalRefused
from registry.lifecycle import approval_needed
from validations.report import GateReport


@flow(name="retrain-model", log_prints=True)
def retrain(
    model_name: str,
    dataset_uri: str,
    dataset: str = "breast_cancer",
    target: str = "target",
    estimator: str = "sklearn.linear_model.LogisticRegression",
    params: dict[str, Any] | None = None,
    standardize: bool = True,
    test_size: float = 0.25,
    random_state: int = 42,
    min_improvement: float = -0.005,
    drift_blocks: bool = False,
    target_stage: Literal["staging", "production"] = "production",
    aliases: list[str] | None = None,
    approval: ApprovalPolicy | None = None,
    registry: str | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Retrain ``model_name`` on ``dataset_uri`` and take it as far as ``target_stage`` if every gate passes.

    Args:
        model_name: registry model name.
        dataset_uri: training data (CSV/Parquet; local path or s3://).
        dataset: name of the data-quality suite and threshold config (validations/suites, /thresholds).
        target: label column.
        estimator: scikit-learn class path.
        params: the estimator's hyperparameters.
        standardize: put a StandardScaler in front of the estimator.
        test_size: holdout share.
        random_state: seed of the split (and of estimators that take one through ``params``).
        min_improvement: required gain of the primary metric over the champion (negative tolerates a loss).
        drift_blocks: a drift failure blocks promotion (otherwise it is shown to the reviewer only).
        target_stage: how far to take the version.
        aliases: aliases moved to the version when it reaches production (default ``["champion"]``).
        approval: who must approve which stage, and how long to wait.
        registry: registry location (default ``PMR_REGISTRY_URI`` or .pmr/registry).
        actor: who registers (default ``PMR_ACTOR`` or the deployment).
    """
    log = get_run_logger()
    policy = approval or ApprovalPolicy()
    who = run_actor(actor)
    data = load_dataset(dataset_uri)
    dq = check_data_quality(data, dataset)
    publish.data_quality(model_name, dq)
    if not dq.passed:
        failed = ", ".join(c.name for c in dq.failed_checks[:5])
        publish.emit("gate-failed", model_name, None, gate="data_quality", failed=failed, dataset=dataset_uri)
        raise GateFailed("data_quality", f"data-quality gate failed on {dataset_uri}: {failed}; nothing registered")

    model, split, metrics = train(data, target, estimator, params or {}, standardize, test_size, random_state)
    champ_mv, champ_model = current_champion(registry, model_name)
    thresholds_report, comparison = metric_gates(model, champ_model, split, metrics, dataset, min_improvement)
    drift_report = check_drift(data, champ_mv.lineage.dataset_uri if champ_mv else None)
    registration_reports = {"data_quality": dq} | ({"drift": drift_report} if drift_report else {})
    info = VersionInfo(
        metrics=metrics,
        params={
            "estimator": estimator,
            "standardize": standardize,
            "test_size": test_size,
            "random_state": random_state,
            **(params or {}),
        },
        description=f"retrained on {dataset_uri}",
        lineage=lineage_for(data, champ_mv.version if champ_mv else None),
        # Drift is shown to the reviewer; it blocks promotion only when drift_blocks is set.
        reports={
            gate: r.to_dict() | ({"advisory": True} if gate == "drift" and not drift_blocks else {})
            for gate, r in registration_reports.items()
        },
    )
    mv = register_version(registry, model_name, model, info, who)
    log.info("registered %s", mv.uri)
    for report in (thresholds_report, comparison):
        record_gate(registry, mv, report, who)
    reports: dict[str, GateReport] = {
        **registration_reports,
        "thresholds": thresholds_report,
        "champion_challenger": comparison,
    }
    reg = Registry.open(registry)
    blocking = [r for r in (thresholds_report, comparison) if not r.passed]
    if drift_blocks and drift_report is not None and not drift_report.passed:
        blocking.append(drift_report)
    links = publish.version_evidence(reg, mv, reports, "none")
    if blocking:
        gates = ", ".join(r.gate for r in blocking)
        publish.overview(reg)
        raise GateFailed(gates, f"{mv.uri} registered but blocked: {gates} failed", mv.version)

    # The registry keeps the model's policy and enforces it for every caller; this run's policy is recorded
    # only when the model has none, and a stage either policy protects waits for a reviewer.
    reg.set_policy(
        model_name,
        policy.rules(),
        actor=who,
        reason="default of the retraining pipeline",
        only_if_unset=True,
        operation_key=operation_key(model_name, "policy"),
    )
    stage = "none"
    for next_stage in ("staging", "production")[: 1 if target_stage == "staging" else 2]:
        state = reg.state(model_name)
        if state.stage_of(mv.version) == next_stage:
            stage = next_stage  # an earlier attempt of this run got here (re-run after a suspend)
            continue
        reason = "gates passed; no approval required for this stage by policy"
        if next_stage in policy.required_for or approval_needed(state, mv.version, next_stage):
            reason = f"gates passed; approved by {_approve(reg, mv, reports, links, policy, next_stage)}"
        promote_version(reg, model_name, mv.version, next_stage, actor=who, reason=reason, aliases=[])
        stage = next_stage
    if stage == "production":  # also after a re-run that found the promotion done
        for alias in aliases if aliases is not None else ["champion"]:
            reg.set_alias(model_name, alias, mv.version, actor=who, reason="promoted", run_id=flow_run.id)
    publish.version_evidence(reg, mv, reports, stage)
    publish.overview(reg)
    return {"model": model_name, "version": mv.version, "stage": stage, "metrics": metrics}


def _approve(
    reg: Registry, mv: Any, reports: dict[str, GateReport], links: dict[str, str], policy: ApprovalPolicy, stage: str
) -> str:
    """Wait for a reviewer's decision on moving ``mv`` to ``stage``, record it, and return the approver.

    Raises:
        ApprovalRejected: rejected, or too many refused decisions.
        ApprovalTimedOut: no decision in time.
    """
    note = ""
    for attempt in range(1, policy.max_attempts + 1):
        description = evidence.approval_description(mv, reports, links, note=note, stage=stage)
        try:
            decision = wait_for_decision(description, policy, key=f"approval-v{mv.version}-{stage}-{attempt}")
        except FlowPauseTimeout:
            kept = reg.state(mv.name).stage_of(mv.version)
            reason = f"no decision within {policy.timeout_seconds}s; the version stays {kept}"
            reg.record_timeout(mv.name, mv.version, actor="pmr-approval", reason=reason, run_id=flow_run.id)
            publish.overview(reg)
            get_run_logger().error("approval of %s timed out: %s", mv.uri, reason)
            raise ApprovalTimedOut(f"{mv.uri}: {reason}") from None
        try:
            reg.record_decision(
                mv.name,
                mv.version,
                approved=decision.approve,
                reviewer=decision.reviewer,
                comment=decision.comment,
                run_id=flow_run.id,
                four_eyes=policy.four_eyes,
                allowed_reviewers=policy.reviewers,
                target_stage=stage,
            )
        except ApprovalRefused as exc:
            note = f"> ⚠️ The last decision was refused: {exc}. Another reviewer must decide."
            publish.emit("approval-refused", mv.name, mv.version, reviewer=decision.reviewer, reason=str(exc))
            continue
        if not decision.approve:
            publish.overview(reg)
            raise ApprovalRejected(f"{mv.uri} rejected by {decision.reviewer}: {decision.comment}")
        return decision.reviewer
    raise ApprovalRejected(f"{mv.uri}: {policy.max_attempts} decisions were refused; nothing promoted")


if __name__ == "__main__":
    retrain(
        model_name="breast-cancer",
        dataset_uri="flows/data/breast_cancer_batch1.csv",
        approval=ApprovalPolicy(required_for=[]),
    )
