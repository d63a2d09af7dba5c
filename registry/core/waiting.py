"""Which versions wait for a reviewer, with the evidence a reviewer decides on: one definition for every view.

A version **waits for a reviewer** when it is in staging and the model's approval policy still needs a recorded
approval for production for it (none that counts is recorded), or when a retraining run is paused for a decision
on it (the flows add those: the registry does not know Prefect); and it is **never** rejected or blocked by a
failed blocking gate. ``pmr pending``, the dashboard's waiting page and ``Registry.waiting`` all read it from here.

Each :class:`WaitingVersion` carries its evidence: the gates' verdicts, its metrics against the production
version's (deltas: candidate minus production, on each metric both have), where to decide (the paused run's page
in the Prefect UI, when there is one) and the ``pmr approve`` line.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from prefect_model_registry.registry.core.lifecycle import approval_needed
from prefect_model_registry.registry.core.policy import Subject
from prefect_model_registry.registry.models import ModelState, ModelVersion

#: Reports stored beside a version that are not verdicts (a sweep's candidates, the drift reference profile).
NOT_GATES = ("sweep", "drift_reference")


class _Plain(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GateVerdict(_Plain):
    """One gate's verdict on a version, in a line."""

    gate: str
    passed: bool
    #: Whether a failure of this gate blocks promotion (an advisory report never does).
    blocking: bool
    #: One line: ``passed (12 checks)``, ``FAILED: 2 of 12 checks: NAME: observed X``, ``not checked: WHY``.
    summary: str


class PausedRun(_Plain):
    """A retraining run paused for a decision on a version (read from Prefect by the flows)."""

    model: str
    version: int
    #: The stage the run moves the version to once approved.
    stage: str
    run_id: str
    run: str | None = None
    since: str | None = None
    #: The run's page in the Prefect UI (its Resume button), when known.
    url: str | None = None


class WaitingVersion(_Plain):
    """A version waiting for a reviewer, with what the reviewer decides on."""

    model: str
    version: int
    #: The stage the decision is for.
    stage: str
    #: Where the version is now (``staging``; a paused run may hold a version still in ``none``).
    current_stage: str
    #: ``run``: a paused run waits for the decision (it resumes with it); ``registry``: no run waits, the
    #: decision is recorded in the registry (then ``pmr promote``).
    waiting: Literal["registry", "run"]
    run: PausedRun | None = None
    gates: list[GateVerdict] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    #: The production version the deltas are against (None: no production version).
    production: int | None = None
    production_metrics: dict[str, float] | None = None
    #: Candidate minus production, on each metric both have (None: no production version to compare with).
    deltas: dict[str, float] | None = None
    #: The command that approves it.
    approve: str


def blocked(state: ModelState, version: int) -> list[str]:
    """Why ``version`` may not be promoted: ``rejected``, ``gate:NAME`` of each failed blocking gate (or ``[]``)."""
    return list(state.blocked.get(version, []))


def may_wait(state: ModelState, version: int) -> bool:
    """Whether ``version`` may be listed as waiting at all: not rejected, not gate-blocked, not deleted."""
    return not state.blocked.get(version) and version not in state.deleted


def waits_in_registry(state: ModelState, version: int, subject: Subject | None = None) -> bool:
    """Whether ``version`` waits for a reviewer with no run holding it: staged, approvable, and still needing one.

    ``subject`` (the version's registrant and artifact hash) judges the approvals already recorded exactly.
    """
    return (
        state.stage_of(version) == "staging"
        and may_wait(state, version)
        and approval_needed(state, version, "production", subject)
    )


def _line(text: object, limit: int = 160) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def verdict(gate: str, report: Mapping[str, Any], *, blocking: bool = True) -> GateVerdict:
    """A gate's verdict from its stored report (a ``GateReport`` as JSON: ``passed``, ``checks``, ``summary``)."""
    passed = report.get("passed") is True
    checks = [c for c in report.get("checks", []) if isinstance(c, Mapping)]
    given = report.get("summary")
    summary: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    failed = [c for c in checks if c.get("passed") is not True]
    blocking = blocking and report.get("advisory") is not True
    if summary.get("checked") is False:
        line = f"not checked: {summary.get('why', '')}"
    elif passed:
        line = f"passed ({len(checks)} check{'s' if len(checks) != 1 else ''})" if checks else "passed"
    else:
        line = f"FAILED: {len(failed)} of {len(checks)} checks"
        if failed:
            line += f": {failed[0].get('name')}: observed {failed[0].get('observed')}"
        if not blocking:
            line += " (advisory)"
    return GateVerdict(gate=gate, passed=passed, blocking=blocking, summary=_line(line))


def verdicts(mv: ModelVersion, state: ModelState, reports: Mapping[str, Mapping[str, Any]]) -> list[GateVerdict]:
    """Every gate's verdict on ``mv`` (reports that are not gates left out), by gate name.

    A report stored at registration blocks as its manifest says; a later one (a ``validated`` event) blocks when
    it failed, as the log replays it.
    """
    later = state.reports.get(mv.version, {})
    found = []
    for gate in sorted(g for g in reports if g not in NOT_GATES):
        ref = mv.reports.get(gate)
        blocking = True if gate in later or ref is None else ref.blocking
        found.append(verdict(gate, reports[gate], blocking=blocking))
    return found


def deltas(metrics: Mapping[str, float], production: Mapping[str, float] | None) -> dict[str, float] | None:
    """Candidate minus production on each metric both have and both finite (None without a production version)."""
    if production is None:
        return None
    return {
        k: metrics[k] - production[k]
        for k in sorted(metrics)
        if k in production and math.isfinite(metrics[k]) and math.isfinite(production[k])
    }


def approve_line(name: str, version: int, stage: str = "production") -> str:
    """The ``pmr approve`` command for ``version`` (the reviewer is ``--actor``/``PMR_ACTOR``)."""
    return f'pmr approve {shlex.quote(name)} {version} --stage {shlex.quote(stage)} --comment "..."'


def run_link(run_id: str, ui_url: str | None) -> str | None:
    """A flow run's page in the Prefect UI at ``ui_url`` (``PMR_PREFECT_UI_URL``), where its Resume button is."""
    if not ui_url:
        return None
    return f"{ui_url.rstrip('/')}/runs/flow-run/{run_id}"


def entry(
    state: ModelState,
    mv: ModelVersion | None,
    stage: str,
    reports: Mapping[str, Mapping[str, Any]],
    production: ModelVersion | None,
    run: PausedRun | None = None,
) -> WaitingVersion:
    """The :class:`WaitingVersion` of ``mv`` (None: a paused run's version this registry does not hold)."""
    version = mv.version if mv is not None else (run.version if run is not None else 0)
    metrics = dict(mv.metrics) if mv is not None else {}
    prod = production.metrics if production is not None and mv is not None else None
    return WaitingVersion(
        model=state.name,
        version=version,
        stage=stage,
        current_stage=state.stage_of(version),
        waiting="run" if run is not None else "registry",
        run=run,
        gates=verdicts(mv, state, reports) if mv is not None else [],
        metrics=metrics,
        production=production.version if production is not None and mv is not None else None,
        production_metrics=dict(prod) if prod is not None else None,
        deltas=deltas(metrics, prod),
        approve=approve_line(state.name, version, stage),
    )
