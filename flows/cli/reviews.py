"""Reviewing from the terminal: which versions wait for a decision, and deciding on the run that waits.

``pmr pending`` lists what waits for a reviewer, as :meth:`Registry.waiting` defines it (the dashboard's waiting page
reads the same): the retraining runs paused for a reviewer (from the Prefect API) and the staged versions that need
an approval no run waits for (from the registry), never a rejected or gate-blocked version, each with its evidence
(gate verdicts, metric deltas against production, the run's page, the ``pmr approve`` line).

``pmr approve``/``pmr reject`` hand a decision to the run that waits for it (:func:`route_decision`, registered
with ``hooks``): the run is resumed with the same input the UI form sends, so the same rules apply and the same
audit events are written; the command then waits for the run's answer, and a refusal (four-eyes, not an allowed
reviewer) is an error with the reason.
Without a configured Prefect API nothing is imported from Prefect and the registry records the decision itself.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from prefect_model_registry.flows.core.events import api_configured
from prefect_model_registry.registry.cli.context import app, emit, open_registry
from prefect_model_registry.registry.core.waiting import PausedRun, WaitingVersion, run_link
from prefect_model_registry.registry.errors import ApprovalRefused, InvalidMetadata
from prefect_model_registry.registry.settings import settings

if TYPE_CHECKING:
    from uuid import UUID

    from prefect.client.orchestration import SyncPrefectClient

#: Pause keys of the retraining flow's approval step (flows/pipeline.py): approval-v<version>-<stage>-<attempt>.
_PAUSE_KEY = re.compile(r"approval-v(\d+)-(staging|production)-\d+")
OK, REFUSED, BAD_INPUT, NO_ANSWER = 0, 1, 2, 3


def waiting_runs(name: str | None = None) -> list[dict[str, Any]]:
    """Retraining runs paused for a reviewer: model, version, stage, run id, since when, where to decide."""
    if not api_configured():
        return []
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.utilities.urls import url_for

    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    ui_url = settings().prefect_ui_url  # the address reviewers reach the UI at, when set; else Prefect's own
    found = []
    with get_client(sync_client=True) as client:
        for run in client.read_flow_runs(flow_run_filter=paused, limit=200):
            model = (run.parameters.get("config") or {}).get("model_name")
            match = _PAUSE_KEY.fullmatch(str(run.state.state_details.pause_key or "")) if run.state else None
            if not match or not model or (name is not None and model != name):
                continue
            found.append(
                {
                    "model": model,
                    "version": int(match.group(1)),
                    "stage": match.group(2),
                    "run_id": str(run.id),
                    "run": run.name,
                    "since": run.state.timestamp.isoformat() if run.state else None,
                    "url": run_link(str(run.id), ui_url) or url_for(run),
                }
            )
    return found


def resume_and_wait(
    run_id: str | UUID, approve: bool, reviewer: str, comment: str, timeout: float = 120
) -> tuple[int, str]:
    """Resume a paused run with a decision and wait for its answer: ``(OK|REFUSED|BAD_INPUT|NO_ANSWER, why)``.

    The answer is the one to this decision. The server stores an input on the pause that holds when it arrives,
    so the pause this decision answered is the one before the state the resume made (checked against the input
    stored on it); the run logs receiving each pause's input (:data:`approval.RECEIVED`), then whether it refused
    or accepted it. Another decision's refusal (an earlier one, or one given in the UI) is never taken for this one.
    """
    from uuid import UUID

    from prefect import get_client
    from prefect.client.schemas.responses import SetStateStatus
    from prefect.exceptions import PrefectHTTPStatusError

    flow_run_id = run_id if isinstance(run_id, UUID) else UUID(str(run_id))
    decision = {"approve": approve, "reviewer": reviewer, "comment": comment}
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        if run.state is None or not run.state.is_paused():
            return BAD_INPUT, f"run {run.name!r} is {run.state.name if run.state else 'unknown'}, not waiting"
        try:
            result = client.resume_flow_run(flow_run_id, run_input=decision)
        except PrefectHTTPStatusError as exc:
            return BAD_INPUT, f"the run refused the input: {exc}"
        if result.status != SetStateStatus.ACCEPT or result.state is None:
            why = getattr(result.details, "reason", None) or result.status.value
            return BAD_INPUT, f"the run refused the input: Cannot resume this run: {why}"
        key = _answered_pause(client, flow_run_id, result.state.id, decision)
        deadline = time.monotonic() + timeout
        moved_on: float | None = None  # when the run's state showed it had answered: paused again, or ended
        while True:
            time.sleep(0.5)
            outcome = _outcome(client, flow_run_id, key) if key else None
            state = client.read_flow_run(flow_run_id).state
            took = f"run {run.name!r} took the decision ({'approved' if approve else 'rejected'} by {reviewer})"
            if outcome is not None:
                refused, line = outcome
                return (REFUSED, line) if refused else (OK, f"{took}; it is {state.name if state else 'running'}")
            answered = state is not None and (
                state.is_final() or (state.is_paused() and state.state_details.pause_key != key)
            )
            if not answered:
                if time.monotonic() > deadline:
                    return NO_ANSWER, f"the run did not answer within {timeout:g}s"
                continue
            moved_on = moved_on or time.monotonic()
            if time.monotonic() - moved_on < _LOG_LAG_S:
                continue  # the run's logs reach the server in batches: its answer may lag its state
            assert state is not None
            asked = key or run.state.state_details.pause_key  # unidentified: the pause it found (outcome only)
            if state.is_paused() and _asked_again(asked, state.state_details.pause_key):
                return REFUSED, "the decision was refused; the run has not logged why yet (pmr history shows it)"
            return OK, f"{took}; it is {state.name}"


#: How long a run's answer may take to reach its logs after its state showed it.
_LOG_LAG_S = 10.0


def _answered_pause(
    client: SyncPrefectClient, flow_run_id: UUID, resumed: UUID, decision: dict[str, Any]
) -> str | None:
    """The pause key the resume that made state ``resumed`` answered, if its stored input is ``decision``."""
    import json

    from prefect.exceptions import ObjectNotFound

    states = sorted(client.read_flow_run_states(flow_run_id), key=lambda s: s.timestamp)
    ids = [s.id for s in states]
    if resumed not in ids:
        return None
    paused = next((s for s in reversed(states[: ids.index(resumed)]) if s.is_paused()), None)
    keyset = paused.state_details.run_input_keyset if paused is not None else None
    if paused is None or not keyset:
        return None
    try:
        stored = json.loads(client.read_flow_run_input(flow_run_id, keyset["response"]))
    except (ObjectNotFound, ValueError):
        return None
    return paused.state_details.pause_key if stored == decision else None


def _outcome(client: SyncPrefectClient, flow_run_id: UUID, key: str) -> tuple[bool, str] | None:
    """``(refused, the run's line)`` for the input pause ``key`` received, once the run has logged it."""
    from prefect_model_registry.flows.core.approval import RECEIVED

    lines = _logs(client, flow_run_id, limit=200)[::-1]  # oldest first
    mine = f"{RECEIVED}{key}:"
    start = next((i for i, m in enumerate(lines) if m.startswith(mine)), None)
    if start is None:
        return None
    for line in lines[start + 1 :]:
        if line.startswith(RECEIVED):
            return None  # the next pause's input: this one's answer was not logged
        if "REFUSED" in line:
            return True, line
        if line.startswith("decision accepted"):
            return False, line
    return None


def _asked_again(answered: str | None, now: str | None) -> bool:
    """Whether pause key ``now`` asks again for the decision ``answered`` asked for (a refusal's retry)."""
    old, new = (_PAUSE_KEY.fullmatch(k or "") for k in (answered, now))
    if old is None or new is None:
        return answered is not None and now is not None and answered != now
    return old.group(1, 2) == new.group(1, 2)


def route_decision(name: str, version: int, approved: bool, reviewer: str, comment: str, stage: str) -> str | None:
    """Give ``pmr approve``/``reject`` to the run that waits for this version, if one does.

    Raises:
        ApprovalRefused: the run refused the decision (the reason is the run's).
        InvalidMetadata: the run refused the input, or did not answer.

    """
    runs = [r for r in waiting_runs(name) if r["version"] == version and r["stage"] == stage]
    if not runs:
        return None
    code, why = resume_and_wait(runs[0]["run_id"], approved, reviewer, comment)
    if code == REFUSED:
        raise ApprovalRefused(f"REFUSED by the waiting run {runs[0]['run']!r}: {why}")
    if code != OK:
        raise InvalidMetadata(why)
    return why


def _logs(client: SyncPrefectClient, flow_run_id: UUID, limit: int = 50) -> list[str]:
    """The run's newest ``limit`` log messages, newest first."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    return [log.message for log in client.read_logs(log_filter=log_filter, sort=LogSort.TIMESTAMP_DESC, limit=limit)]


def _evidence(w: WaitingVersion) -> list[str]:
    """The lines under a waiting version: gates, metrics against production, where to decide."""
    gates = "; ".join(f"{'✓' if g.passed else '✗'} {g.gate}: {g.summary}" for g in w.gates) or "none recorded"
    lines = [f"    gates: {gates}"]
    if w.deltas is None:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(w.metrics.items()))
        lines.append(f"    metrics: {shown or '-'} (no production version to compare with)")
    else:
        prod = w.production_metrics or {}
        shown = ", ".join(
            f"{k}={v:.4g} (production {prod[k]:.4g}, {w.deltas[k]:+.4g})" if k in w.deltas else f"{k}={v:.4g}"
            for k, v in sorted(w.metrics.items())
        )
        lines.append(f"    metrics vs production v{w.production}: {shown or '-'}")
        missing = sorted(set(prod) - set(w.metrics))
        if missing:
            lines.append(f"    not measured (production has them): {', '.join(missing)}")
    if w.run is not None:
        lines.append(f"    resume in the Prefect UI: {w.run.url or 'run id ' + w.run.run_id}")
    lines.append(f"    {w.approve}" + ("" if w.run is not None else "   (then pmr promote)"))
    return lines


def _row(w: WaitingVersion) -> dict[str, Any]:
    """A waiting version as ``--json`` gives it: the whole entry, the paused run's fields at the top level."""
    data = w.model_dump(mode="json")
    run = data.pop("run") or {}
    return data | {k: run.get(k) for k in ("run_id", "run", "since", "url")} if run else data


@app.command()
def pending(name: Annotated[str | None, typer.Argument(help="Only this model.")] = None) -> None:
    """List the versions waiting for a reviewer, with their evidence; never a rejected or gate-blocked version.

    Paused runs (decide with pmr approve/reject: the run resumes) and staged versions that need an approval no run
    waits for (pmr approve, then pmr promote). Each shows its gates' verdicts, its metrics against the production
    version's, the run's page in the Prefect UI (PMR_PREFECT_UI_URL) and the pmr approve line.
    """
    reg = open_registry()
    runs = [PausedRun.model_validate({k: r[k] for k in PausedRun.model_fields}) for r in waiting_runs(name)]
    found = reg.waiting(name, paused=runs)
    rows: list[dict[str, Any]] = [_row(w) for w in found]
    lines: list[str] = []
    for w in found:
        where = (
            f"run {w.run.run or w.run.run_id} paused since {(w.run.since or '?')[:19]}"
            if w.run is not None
            else f"{w.current_stage}, needs an approval (no run waits)"
        )
        lines += [f"{w.model} v{w.version} -> {w.stage}: {where}", *_evidence(w)]
    for model in [name] if name else reg.models():
        proposal = reg.state(model).policy_proposal
        if proposal is not None:  # a loosening waits for a second person
            rows.append(
                {"model": model, "proposal": proposal["seq"], "by": proposal["by"], "rules": proposal["rules"]}
                | {"waiting": "policy"}
            )
            lines.append(
                f"{model} policy change #{proposal['seq']} proposed by {proposal['by']}: needs another person "
                f"(pmr policy approve {model} --proposal {proposal['seq']})"
            )
    emit(rows, lines or "nothing waits for a decision")
