"""Following a flow run for a CI job: its states and logs as they come, why it failed, and the registry check."""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from prefect_model_registry.registry.cli.context import current, echo

if TYPE_CHECKING:
    from uuid import UUID

    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import State

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3

#: How long the wait tolerates an unreachable API (a server restart) before giving up with exit 1.
API_GRACE_SECONDS = 120

_LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


#: Why a run failed, recognised by the exception named in the state message (the flows' own errors).
_REASONS = (
    ("GateFailed", "a gate failed"),
    ("ApprovalRejected", "the reviewer rejected the version"),
    ("ApprovalTimedOut", "no reviewer decided before the approval timed out"),
    ("FlowPauseTimeout", "no reviewer decided before the approval timed out"),
    # The server's own words when a pause expires: "The flow was failed and never resumed."
    ("and never resumed", "no reviewer decided before the approval timed out"),
    ("DatasetError", "the dataset could not be used"),
    ("EstimatorError", "the estimator could not be used"),
    ("StoreUnavailable", "the registry's object storage was unreachable"),
)


_STAGE_RANK = {"none": 0, "staging": 1, "production": 2}


class Stage(StrEnum):
    """Stages ``--expect-stage`` accepts."""

    none = "none"
    staging = "staging"
    production = "production"


class _OneLineFailures(logging.Filter):
    """Drops the traceback from log records of the flows' deliberate failures (the message line stays)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from prefect_model_registry.flows.errors import PipelineError
        from prefect_model_registry.registry.errors import RegistryError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, PipelineError | RegistryError):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_expected_failures() -> None:
    """Show a gate failure, a rejection or a timeout as the one line Prefect logs for it, without a traceback.

    Call after Prefect configured its logging (after ``import prefect``). Unexpected errors keep theirs.
    """
    one_line = _OneLineFailures()
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, _OneLineFailures) for f in handler.filters):
                handler.addFilter(one_line)


def say(message: str) -> None:
    """One line of the command's own output (prefixed, flushed: CI logs interleave)."""
    echo(f"pmr ci: {message}")  # run names, state messages and logs are the run's text: shown as typed


def failure_reason(state: State) -> str:
    """A short, human reason for a final state that is not Completed."""
    message = state.message or ""
    for marker, reason in _REASONS:
        if marker in message:
            return reason
    if state.name == "TimedOut":
        return "the flow run timed out"
    if state.is_crashed():
        return "the flow run crashed (infrastructure or process failure)"
    if state.is_cancelled():
        return "the flow run was cancelled"
    return "the flow run failed"


def run_local(cfg: Any, timeout: float, *, traceback: bool = False) -> tuple[int, UUID | None]:
    """Run the retraining flow in this process (logs go to the console through Prefect's handler)."""
    # The temporary API this starts must not try to reach a telemetry service (no network; "database is locked").
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Without a server configured, Prefect starts a temporary one and gives it 20 s; on a busy CI runner that
    # is not enough, and the job failed on the timeout before the run began.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from prefect_model_registry.flows.pipeline import retrain as retrain_flow

    if not traceback:
        quiet_expected_failures()

    say(f"running retrain-model in this process for {cfg.model_name} (timeout {timeout:g}s)")
    state = retrain_flow.with_options(timeout_seconds=timeout)(cfg, return_state=True)
    run_id = state.state_details.flow_run_id
    if state.is_completed():
        result = state.result(raise_on_failure=False)
        say(f"Completed: {result}")
        return EXIT_OK, run_id
    if state.name == "TimedOut":
        say(f"TIMED OUT: the run did not finish within {timeout:g}s ({state.message})")
        return EXIT_TIMEOUT, run_id
    if traceback:
        # A deliberate failure ends the run with its error as the state's data and logs no traceback: show it.
        error = state.result(raise_on_failure=False)
        if isinstance(error, BaseException):
            print_traceback(error)
    say(f"{(state.name or state.type.value).upper()}: {failure_reason(state)}: {state.message}")
    return EXIT_FAILED, run_id


def print_traceback(error: BaseException) -> None:
    """The full traceback of ``error`` on stderr (``--traceback``)."""
    import sys
    import traceback

    traceback.print_exception(error, file=sys.stderr)
    sys.stderr.flush()


def describe_error(error: BaseException) -> str:
    """One line saying why ``pmr ci`` itself could not go on (not a run's failure: the run never got that far)."""
    text = " ".join(str(error).split())
    if "ephemeral Prefect API server" in text:
        # Without PREFECT_API_URL, Prefect starts a temporary API in a subprocess and waits for it this long.
        waited = os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "?")
        return (
            f"the temporary Prefect API did not start within {waited}s (raise "
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS on a busy machine, or set PREFECT_API_URL to a server): "
            f"{text[:300]}"
        )
    if len(text) > 300:
        text = text[:299] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def run_deployment(
    name: str, layers: list[dict[str, Any]], timeout: float, poll: float, *, traceback: bool = False
) -> tuple[int, UUID | None, str]:
    """Create a run of deployment ``name`` with its config merged with ``layers``, and follow it to the end.

    The run's logs are printed as they reach the server, without the tracebacks in them unless ``traceback``:
    the reason is the last line, from the run's final state.

    Returns:
        The exit code, the flow run id (if a run was created) and the model name.
    """
    from prefect import get_client
    from prefect.utilities.urls import url_for

    started, model = _start_run(name, layers)
    if isinstance(started, int):
        return started, None, model
    run = started
    url = url_for(run) or f"flow run {run.id}"
    say(f"started {name} run {run.name!r} ({run.id}): {url}")
    deadline = time.monotonic() + timeout
    waiting_hint = time.monotonic() + 60
    last_state: str | None = None
    logs = _LogTail(run.id, tracebacks=traceback)
    unreachable_since: float | None = None
    with get_client(sync_client=True) as client:
        while True:
            try:
                flow_run = client.read_flow_run(run.id)
                logs.print_new(client)
            except Exception as exc:  # a server restart must not fail a job that waits hours for a reviewer
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if now - unreachable_since > API_GRACE_SECONDS:
                    say(f"ERROR: lost the Prefect API for {API_GRACE_SECONDS}s ({exc!r}); the run goes on: {url}")
                    return EXIT_FAILED, run.id, model
                time.sleep(poll)
                continue
            unreachable_since = None
            state = flow_run.state
            if state is not None and state.name != last_state:
                last_state = state.name
                say(f"state: {state.name}" + (f" ({state.message})" if state.message and not state.is_final() else ""))
                if state.is_paused():
                    say(f"waiting for a reviewer: open {url} and press Resume (approve or reject)")
            if state is not None and state.is_final():
                logs.drain(client, poll)
                break
            if state is not None and state.is_scheduled() and time.monotonic() > waiting_hint:
                waiting_hint = float("inf")
                say("no worker has picked the run up yet: is a worker running for the deployment's work pool?")
            if time.monotonic() > deadline:
                say(f"TIMED OUT after {timeout:g}s: the run is still {last_state}; it goes on: {url}")
                return EXIT_TIMEOUT, run.id, model
            time.sleep(poll)
    if state.is_completed():
        say(f"Completed: {url}")
        return EXIT_OK, run.id, model
    say(f"{(state.name or state.type.value).upper()}: {failure_reason(state)}: {state.message}")
    return EXIT_FAILED, run.id, model


def _start_run(name: str, layers: list[dict[str, Any]]) -> tuple[Any, str]:
    """A run of deployment ``name`` with the merged config, or the exit code of why none was created; the model."""
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
    from prefect.settings import get_current_settings

    from prefect_model_registry.flows.core.config import RetrainConfig
    from prefect_model_registry.flows.errors import ConfigError

    api = get_current_settings().api.url
    model = str(merge_config({}, *layers).get("model_name", "?"))
    try:
        with get_client(sync_client=True) as client:
            defaults = client.read_deployment_by_name(name).parameters.get("config") or {}
        # The server would replace the deployment's whole config with the run's: send the merged one.
        merged = merge_config(defaults, *layers)
        model = RetrainConfig.parse(merged, source=f"the config of {name}").model_name
        return run_deployment(name, parameters={"config": merged}, timeout=0, as_subflow=False), model
    except ConfigError as exc:
        say(f"ERROR: {exc}")
        return EXIT_USAGE, model
    except ObjectNotFound:
        say(f"ERROR: deployment {name!r} not found on {api or 'the ephemeral API'} (prefect deploy first?)")
        return EXIT_USAGE, model
    except PrefectHTTPStatusError as exc:
        detail = exc.response.text if exc.response is not None else str(exc)
        say(f"ERROR: the server refused the run of {name!r}: {detail}")
        return EXIT_USAGE, model
    except Exception as exc:  # unreachable API, bad credentials ...: one clear line, not a traceback
        say(f"ERROR: could not start a run of {name!r} on {api or 'the ephemeral API'}: {exc!r}")
        return EXIT_FAILED, model


class _LogTail:
    """Prints a flow run's logs (its tasks' too) once each, in time order, as they reach the server."""

    #: Logs reach the server in batches every couple of seconds; re-read this far back to catch late ones.
    WINDOW = timedelta(seconds=60)

    #: Where Prefect's API log handler appends a record's traceback to its message.
    TRACEBACK = "\nTraceback (most recent call last):"
    #: What a flow-run process logs, with the traceback, after any failed run (its flow ended Failed, so it raises).
    ENGINE_EXIT = "Engine execution exited with unexpected exception"

    def __init__(self, flow_run_id: UUID, *, tracebacks: bool = False) -> None:
        self.flow_run_id = flow_run_id
        self.tracebacks = tracebacks
        self.seen: set[Any] = set()
        self.newest: datetime | None = None
        self.task_names: dict[Any, str] = {}

    def _task_name(self, client: SyncPrefectClient, task_run_id: Any) -> str:
        if task_run_id not in self.task_names:
            for attempt in range(3):  # a busy API may time out once; the name is worth a second ask
                try:
                    self.task_names[task_run_id] = client.read_task_run(task_run_id).name
                    break
                except Exception:  # a name is a nicety; never fail the job over it (and never cache its absence)
                    if attempt == 2:
                        return str(task_run_id)[:8]
                    time.sleep(0.2)
        return self.task_names[task_run_id]

    def print_new(self, client: SyncPrefectClient) -> int:
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId, LogFilterTimestamp
        from prefect.client.schemas.sorting import LogSort

        since = self.newest - self.WINDOW if self.newest else None
        log_filter = LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=[self.flow_run_id]),
            timestamp=LogFilterTimestamp(after_=since) if since else None,  # type: ignore[arg-type]  # Prefect types it as its own DateTime, a datetime subclass
        )
        printed, offset = 0, 0
        while True:
            page = client.read_logs(log_filter=log_filter, limit=200, offset=offset, sort=LogSort.TIMESTAMP_ASC)
            for log in page:
                if log.id in self.seen:
                    continue
                self.seen.add(log.id)
                if self.newest is None or log.timestamp > self.newest:
                    self.newest = log.timestamp
                shown = self._shown(log.message)
                if shown is None:
                    continue
                stamp = log.timestamp.astimezone(UTC).strftime("%H:%M:%S")
                level = _LEVELS.get(log.level, str(log.level))
                where = f"[{self._task_name(client, log.task_run_id)}] " if log.task_run_id else ""
                echo(f"  {stamp} {level:<7} {where}{shown}")
                printed += 1
            if len(page) < 200:
                return printed
            offset += len(page)

    def _shown(self, message: str) -> str | None:
        """The message without its traceback unless tracebacks are wanted; ``None``: nothing worth a line."""
        head, marker, _ = message.partition(self.TRACEBACK)
        if self.tracebacks or not marker:
            return message
        if head.startswith(self.ENGINE_EXIT):
            return None  # its traceback only repeats the error the run's final state names
        return f"{head.rstrip()} (--traceback shows the traceback)"

    def drain(self, client: SyncPrefectClient, poll: float) -> None:
        """After the final state: the process sends its last logs as it exits; wait for them briefly.

        Logs reach the server in batches every couple of seconds, so the wait ends after 3 s without a new one
        (15 s at most), however short the poll interval.
        """
        deadline = time.monotonic() + 15
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < 3:
            time.sleep(min(poll, 1.0))
            if self.print_new(client):
                quiet_since = time.monotonic()


def check_registry(model: str, run_id: UUID, expected: str) -> int:
    """Exit code of the registry check: the version registered by ``run_id`` is at least at ``expected``."""
    from prefect_model_registry.registry import Registry

    reg = Registry.open(current().registry, create=False)
    where = reg.store.uri
    if model not in reg.models():
        say(f"CHECK FAILED: {model} is not in the registry at {where}")
        return EXIT_FAILED
    mine = [mv for mv in reg.versions(model, limit=50) if mv.lineage.flow_run_id == str(run_id)]
    if not mine:
        say(f"CHECK FAILED: no version of {model} in {where} was registered by flow run {run_id}")
        return EXIT_FAILED
    mv = mine[0]
    stage = reg.state(model).stage_of(mv.version)
    if _STAGE_RANK.get(stage, -1) < _STAGE_RANK[expected]:
        say(f"CHECK FAILED: {mv.uri} is {stage}, expected {expected}")
        return EXIT_FAILED
    say(f"checked: {mv.uri} is {stage} in {where}")
    return EXIT_OK


def merge_config(base: dict[str, Any], *layers: dict[str, Any]) -> dict[str, Any]:
    """``base`` with each layer merged over it: nested mappings merge, other values replace.

    Dotted keys (``split.test_size``) set a nested field.
    """
    merged = json.loads(json.dumps(base))
    for layer in layers:
        for key, value in layer.items():
            target, parts = merged, key.split(".")
            for part in parts[:-1]:
                if not isinstance(target.get(part), dict):
                    target[part] = {}
                target = target[part]
            leaf = parts[-1]
            if isinstance(value, dict) and isinstance(target.get(leaf), dict):
                target[leaf] = merge_config(target[leaf], value)
            else:
                target[leaf] = value
    return merged
