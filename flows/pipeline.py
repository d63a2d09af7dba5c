"""The retraining pipeline: data quality -> train -> gates -> register -> stage -> approval -> production."""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow, get_run_logger, unmapped
from prefect.exceptions import FlowPauseTimeout
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from prefect_model_registry.flows.core import evidence, publish, training, trust
from prefect_model_registry.flows.core.approval import ApprovalPolicy, wait_for_decision
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.core.opkeys import operation_key
from prefect_model_registry.flows.core.training import Split
from prefect_model_registry.flows.errors import ApprovalRejected, ApprovalTimedOut, ConfigError, GateFailed
from prefect_model_registry.flows.lifecycle import failed_with_reason, promote_version
from prefect_model_registry.flows.tasks import (
    check_data_quality,
    check_drift,
    current_champion,
    lineage_for,
    load_dataset,
    metric_gates,
    register_version,
    run_actor,
    run_registrant,
    split_dataset,
    train_candidate,
)
from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.core.display import markdown
from prefect_model_registry.registry.core.lifecycle import approval_needed, exempt_now
from prefect_model_registry.registry.core.policy import ApprovalRules, Subject
from prefect_model_registry.registry.errors import ApprovalRefused, ModelNotFound
from prefect_model_registry.validations import drift, policy, sweep
from prefect_model_registry.validations.errors import SweepConfigError
from prefect_model_registry.validations.report import GateReport


@flow(name="retrain-model", log_prints=True)
@failed_with_reason  # a gate, a rejection ...: the run ends Failed with the reason as its message
def retrain(config: RetrainConfig) -> dict[str, Any]:
    """Retrain a model and take it as far as ``config.target_stage`` if every blocking gate passes.

    Data quality -> split -> train (one candidate, or a sweep) -> metrics, thresholds and champion/challenger
    -> register (with every gate report in the manifest) -> staging -> approval -> production.

    Args:
        config: the whole run, see :class:`prefect_model_registry.flows.core.config.RetrainConfig` (loadable from YAML).
    """
    cfg = RetrainConfig.parse(config)
    # What the run may reach, the suite, thresholds and trainer: all checked before any data is read.
    held_to = cfg.preflight()
    log = get_run_logger()
    approvals, gates = cfg.approval, cfg.gates
    if held_to is not None and approvals.reviewers is not None:  # a deployment's run names no reviewers of its own
        trust.check_reviewers(approvals.reviewers, _policy_of(cfg.registry, cfg.model_name), held_to)
    who = run_actor(cfg.actor)
    # Four-eyes compares reviewers with the registrant: the run's creator when the server knows it, else the name
    # the run claims (recorded as claimed, in the version's tags).
    registrant, known_as = run_registrant(cfg.actor)
    data = load_dataset(cfg.dataset_uri)
    dq = _data_quality_gate(cfg, data)

    split = split_dataset(data, cfg.target, cfg.split.test_size, cfg.split.random_state)
    model, metrics, params, sweep = _train(cfg, split, cfg.trainer_modules(held_to)[0])
    champ_mv, champ_model = current_champion(cfg.registry, cfg.model_name)
    reports = _gate_reports(cfg, data, dq, split, model, metrics, sweep, (champ_mv, champ_model), held_to)
    verdict = policy.decide(gates, reports)
    info = VersionInfo(
        metrics=policy.finite_metrics(metrics),  # an undefined metric is a failed gate, never a crash
        params={"trainer" if cfg.trainer else "estimator": cfg.trainer or cfg.estimator, **_recorded(cfg), **params},
        description=f"retrained on {cfg.dataset_uri}",
        tags={"pmr.registrant": known_as},
        lineage=lineage_for(data, champ_mv.version if champ_mv else None, cfg),  # with the code and checks used
        # Every verdict of the run lands with the version: no crash or retry can separate them.
        reports=policy.manifest_reports(gates, reports),
        signature=training.signature(split.X_train),  # what scoring checks its input against
    )
    mv = register_version(cfg.registry, cfg.model_name, model, info, registrant, cfg.snapshot_dataset)
    log.info("registered %s", mv.uri)
    reg = Registry.open(cfg.registry)
    links = publish.version_evidence(reg, mv, reports, "none")
    if not verdict.passed:
        blocking = ", ".join(verdict.blocking)
        why = "; ".join(_first_failure(reports[g]) for g in verdict.blocking)
        publish.overview(reg)
        raise GateFailed(blocking, f"{mv.uri} registered but blocked: {blocking} failed ({why})", mv.version)

    # The registry keeps the model's policy and enforces it for every caller, and a stage either policy
    # protects waits for a reviewer. A model without one gets the worker's minimum in a deployment's run (a run
    # never writes its own), this run's policy in a person's own process.
    reg.set_policy(
        cfg.model_name,
        held_to.policy.approval if held_to is not None else approvals.rules(),
        actor=who,
        reason="worker policy's minimum" if held_to is not None else "default of the retraining pipeline",
        only_if_unset=True,
        operation_key=operation_key(cfg.model_name, "policy"),
    )
    stage = _promote_through(reg, cfg, mv, reports, links, who)
    if stage == "production":  # also after a re-run that found the promotion done
        for alias in cfg.aliases:
            reg.set_alias(cfg.model_name, alias, mv.version, actor=who, reason="promoted", run_id=flow_run.id)
    publish.version_evidence(reg, mv, reports, stage)
    publish.overview(reg)
    return {"model": cfg.model_name, "version": mv.version, "stage": stage, "metrics": info.metrics}


def _data_quality_gate(cfg: RetrainConfig, data: Any) -> GateReport:
    """The data-quality report of ``data``, published; a failure stops the run before anything is trained."""
    dq = check_data_quality(data, cfg.suite_ref)
    publish.data_quality(cfg.model_name, dq)
    if not dq.passed:
        failed = dq.failed_summary()  # names five, counts the rest ("and +2 more")
        publish.emit("gate-failed", cfg.model_name, None, gate="data_quality", failed=failed, dataset=cfg.dataset_uri)
        raise GateFailed("data_quality", f"data-quality gate failed on {cfg.dataset_uri}: {failed}; nothing registered")
    return dq


def _gate_reports(
    cfg: RetrainConfig,
    data: Any,
    dq: GateReport,
    split: Any,
    model: Any,
    metrics: dict[str, float],
    sweep: GateReport | None,
    champion: tuple[Any, Any],
    held_to: trust.Loaded | None,
) -> dict[str, GateReport]:
    """Every gate's report on the candidate (data quality already run), the sweep's, and the drift reference."""
    champ_mv, champ_model = champion
    metrics_report, thresholds_report, comparison = metric_gates(
        model, champ_model, split, metrics, cfg.thresholds_ref, cfg.gates
    )
    drift_report = check_drift(data, cfg.registry, champ_mv, held_to.policy.roots if held_to else None)
    return {
        "data_quality": dq,
        **({"drift": drift_report} if drift_report else {}),
        "metrics": metrics_report,
        "thresholds": thresholds_report,
        "champion_challenger": comparison,
        **({"sweep": sweep} if sweep else {}),
        # Kept with the version, so the next run checks drift against it whatever its file holds by then.
        "drift_reference": drift.profile_report(drift.reference_profile(data.frame)),
    }


def _promote_through(
    reg: Registry, cfg: RetrainConfig, mv: Any, reports: dict[str, GateReport], links: Any, who: str
) -> str:
    """Take ``mv`` stage by stage to ``cfg.target_stage``, waiting for a reviewer where a policy asks; the stage."""
    stage = "none"
    subject = Subject(mv.created_by, mv.artifact.sha256)
    for next_stage in policy.stage_path(cfg.target_stage):
        state = reg.state(cfg.model_name)
        if state.stage_of(mv.version) == next_stage:
            stage = next_stage  # an earlier attempt of this run got here (re-run after a suspend)
            continue
        reason = "gates passed; no approval required for this stage by policy"
        if cfg.approval.wants_review(state, mv.version, next_stage, subject) or approval_needed(
            state, mv.version, next_stage, subject
        ):
            reason = f"gates passed; approved by {_approve(reg, mv, reports, links, cfg.approval, next_stage)}"
        elif exempt_now(state, next_stage):
            reason = "gates passed"  # the event itself says "first production version: exempt by policy"
        # The run's aliases (champion) move in the promotion's own event: a protected one is covered by it.
        moving = list(cfg.aliases) if next_stage == "production" else []
        promote_version(reg, cfg.model_name, mv.version, next_stage, actor=who, reason=reason, aliases=moving)
        stage = next_stage
    return stage


def _train(
    cfg: RetrainConfig, split: Split, modules: tuple[str, ...]
) -> tuple[Any, dict[str, float], dict[str, Any], GateReport | None]:
    """Train the one candidate, or sweep ``cfg.candidates`` on the selected task runner and keep the best.

    The best on the primary metric wins; candidates tied on it within ``cfg.tie_tolerance`` are decided by
    ``cfg.secondary_metric`` (default log_loss for a model with ``predict_proba``), then by candidate order.

    ``modules`` is the trainer allow-list the flow resolved: a Dask worker has no run context to resolve it.
    """
    if not cfg.candidates:
        model, metrics = train_candidate(split, cfg, cfg.params, modules)
        return model, metrics, dict(cfg.params), None
    candidates = [cfg.params | c for c in cfg.candidates]
    with task_runner_for(cfg) as runner:
        arguments = {"data": unmapped(split), "config": unmapped(cfg), "params": candidates}
        futures = runner.map(train_candidate, arguments | {"trainer_modules": unmapped(modules)})
        results = [f.result() for f in futures]
    scored = [(params, metrics) for params, (_, metrics) in zip(candidates, results, strict=True)]
    primary = policy.primary_metric(gates=cfg.gates, model=results[0][0])
    # A tie on the primary metric is decided by the secondary one, then by candidate order (validations/sweep.py).
    try:
        secondary = sweep.secondary_for(cfg.secondary_metric, primary, results[0][0])
        best, report = sweep.choose(scored, primary, secondary, cfg.tie_tolerance)
    except SweepConfigError as exc:
        raise ConfigError(str(exc)) from None
    get_run_logger().info("sweep (%s): %s", cfg.task_runner, report.summary["how"])
    return results[best][0], results[best][1], candidates[best], report


def task_runner_for(cfg: RetrainConfig) -> Any:
    """The task runner of a sweep: threads here, or Dask (a scheduler's address, else a local 2-worker cluster)."""
    if cfg.task_runner == "local":
        return ThreadPoolTaskRunner(max_workers=min(4, len(cfg.candidates)))
    from prefect_dask import DaskTaskRunner

    if cfg.dask_address:
        return DaskTaskRunner(address=cfg.dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "dashboard_address": "127.0.0.1:0"})


def _policy_of(registry: str | None, name: str) -> ApprovalRules | None:
    """The model's approval policy, ``None`` for a model without one (or not registered yet)."""
    try:
        return Registry.open(registry).policy(name)
    except ModelNotFound:
        return None


def _recorded(cfg: RetrainConfig) -> dict[str, Any]:
    """The run settings a version records beside its hyperparameters."""
    extra = {"preprocessing": cfg.preprocessing} if not cfg.trainer else {}
    return {**extra, "test_size": cfg.split.test_size, "random_state": cfg.split.random_state}


def _first_failure(report: GateReport) -> str:
    failed = report.failed_checks
    return f"{report.gate}: {failed[0].name}: {failed[0].observed}" if failed else report.gate


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
            # Logged in the run and in the audit log (model.approval-refused reaches automations from there).
            note = f"> ⚠️ The last decision was refused: {markdown(str(exc))}. Another reviewer must decide."
            get_run_logger().warning("decision on %s by %r REFUSED: %s; waiting again", mv.uri, decision.reviewer, exc)
            reg.record_refusal(
                mv.name,
                mv.version,
                reviewer=decision.reviewer,
                reason=str(exc),
                run_id=flow_run.id,
                operation_key=operation_key(mv.name, f"v{mv.version}", stage, "refusal", str(attempt)),
            )
            continue
        get_run_logger().info(
            "decision accepted: %s %s by %s", mv.uri, "approved" if decision.approve else "rejected", decision.reviewer
        )
        if not decision.approve:
            publish.overview(reg)
            raise ApprovalRejected(f"{mv.uri} rejected by {decision.reviewer}: {decision.comment}")
        return decision.reviewer
    raise ApprovalRejected(f"{mv.uri}: {policy.max_attempts} decisions were refused; nothing promoted")


def main(argv: list[str] | None = None) -> int:
    """``python -m prefect_model_registry.flows.pipeline --config retrain.yaml``: run one retraining in this process."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m prefect_model_registry.flows.pipeline", description=main.__doc__)
    parser.add_argument("--config", required=True, help="retraining config (YAML), see flows/core/config.py")
    args = parser.parse_args(argv)
    try:
        cfg = RetrainConfig.from_file(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = retrain(cfg, return_state=True)
    print(f"{state.name}: {state.message or state.result(raise_on_failure=False)}")
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main())
