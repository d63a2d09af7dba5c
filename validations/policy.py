"""The gate policy: which reports block, which are advisory, and which stages a version walks through.

Decided here once, in plain functions that tests call without Prefect; the retraining flow only wires them. A
report's verdict is final when it is computed: every gate report of a run is stored in the version's manifest
at registration, marked ``advisory`` when this policy says it must not block, so no crash or retry between
registration and a later write can lose a verdict.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from prefect_model_registry.validations.report import CheckResult, GateReport, format_value

#: Gates a retraining run produces, in the order a reviewer reads them.
GATES = ("data_quality", "drift", "metrics", "thresholds", "champion_challenger", "sweep", "drift_reference")
Stage = Literal["staging", "production"]


def _drift_advisory() -> list[Literal["drift", "thresholds", "champion_challenger"]]:
    """The default of ``GatePolicy.advisory``: drift informs the reviewer but never blocks."""
    return ["drift"]


class GatePolicy(BaseModel):
    """Which gates block promotion and how strict the comparison with the champion is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    advisory: list[Literal["drift", "thresholds", "champion_challenger"]] = Field(
        default_factory=_drift_advisory,
        title="Advisory gates",
        description="Gates shown to the reviewer that never block promotion (data quality and undefined "
        "metrics always block).",
    )
    min_improvement: float = Field(
        default=-0.005,
        title="Minimum improvement over the champion",
        description="Required gain of the primary metric over the production model on the same holdout "
        "(negative tolerates a small loss).",
        allow_inf_nan=False,
    )
    primary_metric: str | None = Field(
        default=None,
        title="Primary metric",
        description="Metric that picks the best sweep candidate and gates champion/challenger "
        "(default roc_auc for classifiers, rmse for regressors).",
    )


@dataclass(frozen=True)
class Verdict:
    """What a run's reports decide: the gates that block, and those that failed but only advise."""

    blocking: tuple[str, ...]
    advisory_failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """No blocking gate failed."""
        return not self.blocking


def is_advisory(policy: GatePolicy, gate: str) -> bool:
    """Whether a failure of ``gate`` is shown but does not block (data quality and metrics always block)."""
    return gate in policy.advisory


def decide(policy: GatePolicy, reports: Mapping[str, GateReport]) -> Verdict:
    """The verdict of a run's gate reports under ``policy``."""
    failed = [gate for gate in _ordered(reports) if not reports[gate].passed]
    return Verdict(
        blocking=tuple(g for g in failed if not is_advisory(policy, g)),
        advisory_failures=tuple(g for g in failed if is_advisory(policy, g)),
    )


def manifest_reports(policy: GatePolicy, reports: Mapping[str, GateReport]) -> dict[str, dict]:
    """The reports as stored in the manifest at registration (advisory ones marked so the registry ignores them)."""
    # Through strict JSON: an undefined metric inside a report is stored as the string "NaN", never a NaN.
    return {
        gate: json.loads(reports[gate].to_json(indent=None)) | ({"advisory": True} if is_advisory(policy, gate) else {})
        for gate in _ordered(reports)
    }


def stage_path(target: Stage) -> tuple[Stage, ...]:
    """The stages a passing version walks through to reach ``target`` (each may wait for a reviewer)."""
    return ("staging",) if target == "staging" else ("staging", "production")


def metrics_report(metrics: Mapping[str, float]) -> GateReport:
    """The ``metrics`` gate: every holdout metric must be defined (a NaN or infinite value fails, with why)."""
    checks = tuple(
        CheckResult(
            name=f"{name} is defined on the holdout",
            passed=math.isfinite(value),
            expected="a finite value",
            observed=format_value(value) if math.isfinite(value) else f"{format_value(value)}: {_why(name)}",
            details={"metric": name, "value": value},
        )
        for name, value in metrics.items()
    )
    undefined = [c.details["metric"] for c in checks if not c.passed]
    return GateReport(
        gate="metrics", passed=not undefined, checks=checks, summary={"metrics": len(checks), "undefined": undefined}
    )


def finite_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The metrics that can be stored in a manifest (undefined ones are kept in the ``metrics`` report)."""
    return {name: value for name, value in metrics.items() if math.isfinite(value)}


def _why(metric: str) -> str:
    if metric == "roc_auc":
        return "undefined, e.g. the holdout holds a single class"
    if metric in ("precision", "f1"):
        return "undefined, e.g. the model never predicts the positive class"
    if metric == "recall":
        return "undefined, e.g. the holdout holds no positive example"
    return "undefined on this holdout"


def _ordered(reports: Mapping[str, GateReport]) -> list[str]:
    return sorted(reports, key=lambda g: (GATES.index(g) if g in GATES else len(GATES), g))


def primary_metric(*, gates: GatePolicy, model: object) -> str:
    """The metric that ranks candidates and gates champion/challenger: the policy's, else roc_auc or rmse."""
    from prefect_model_registry.validations.metrics import check_metric_name, is_classifier

    return check_metric_name(gates.primary_metric or ("roc_auc" if is_classifier(model) else "rmse"))
