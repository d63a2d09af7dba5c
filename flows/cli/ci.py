"""``pmr ci``: commands a CI job can call and trust.

``pmr ci retrain MODEL`` triggers the retraining deployment (or, with ``--local``, runs the flow in this
process), streams the run's state changes and logs, and exits with a code a pipeline can act on:

====  ==========================================================================================
0     the run Completed (and, with ``--expect-stage``, the version it registered is at that stage)
1     the run Failed, Crashed or was Cancelled (a gate failed, a reviewer rejected, the approval
      timed out ...), or the registry check found no version at the expected stage
2     bad usage: unknown deployment, invalid parameters, malformed ``--param``
3     the wait timed out (``--timeout``); the run itself goes on (deployments) and its URL is printed
====  ==========================================================================================

Prefect is imported only inside the commands, so ``pmr models`` stays fast. A failed run ends with one line,
``pmr ci: FAILED: <why>: <the run's final state message>``, in both modes; the run's streamed logs keep their
first lines but not their tracebacks. ``--traceback`` shows them (and, with ``--local``, the error's own). Whatever
else goes wrong (the temporary Prefect API ``--local`` starts does not come up, the API stops answering ...),
``pmr ci`` says so in one ``pmr ci: ERROR:`` line before it exits non-zero.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from prefect_model_registry.flows.cli.runs import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Stage,
    check_registry,
    describe_error,
    merge_config,
    print_traceback,
    run_deployment,
    run_local,
    say,
)
from prefect_model_registry.registry.cli.context import current
from prefect_model_registry.registry.settings import CI_DEPLOYMENT, VARIABLES

#: The deployment ``pmr ci retrain`` runs unless told otherwise (see deployments/prefect.yaml).
DEFAULT_DEPLOYMENT: str = VARIABLES[CI_DEPLOYMENT].default  # retrain-model/retrain


app = typer.Typer(
    name="ci",
    help="For CI jobs: run a flow, stream what happens, exit non-zero when it failed, was rejected or timed out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; VALUE is JSON when it parses (``3``, ``true``, ``{"a": 1}``), else a string.

    Raises:
        typer.BadParameter: an item without ``=``.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--param takes KEY=VALUE, got {item!r}", param_hint="--param")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


@app.command("retrain")
def retrain(
    model: Annotated[
        str | None, typer.Argument(help="Registry model name to retrain (default: the config's model_name).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Retraining config (YAML, see RetrainConfig) over the deployment's."),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", "-d", help="Training data URI (s3://… or a path). Default: the config's."),
    ] = None,
    deployment: Annotated[
        str, typer.Option("--deployment", envvar=CI_DEPLOYMENT, help="FLOW/DEPLOYMENT to run.")
    ] = DEFAULT_DEPLOYMENT,
    local: Annotated[
        bool, typer.Option("--local", help="Run the flow in this process instead of through a deployment.")
    ] = False,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", "-p", help="Config field KEY=VALUE (VALUE as JSON; a.b=… sets a nested field), repeatable."
        ),
    ] = None,
    expect_stage: Annotated[
        Stage | None,
        typer.Option(
            "--expect-stage",
            help="After success, check in the registry (-r / PMR_REGISTRY_URI) that the version this run "
            "registered is at least at this stage.",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the run; exit 3 after that.", min=1)
    ] = 3600,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between status checks.", min=0.2)] = 2.0,
    traceback: Annotated[
        bool, typer.Option("--traceback", help="Show the tracebacks of a failed run (in its logs; its error's too).")
    ] = False,
) -> None:
    """Retrain MODEL and wait: exit 0 when the run completed, 1 when it failed, 3 when the wait timed out.

    The run's config is the deployment's, then --config, then --param, MODEL and --dataset over it; it is
    checked here first (exit 2 with the field named). Runs the retraining deployment (a worker must serve its
    work pool), or the flow in this process (--local).

    Prefect settings come from the environment: PREFECT_API_URL, and PREFECT_API_AUTH_STRING or PREFECT_API_KEY.
    """
    from prefect_model_registry.flows.core.config import RetrainConfig, read_config_file
    from prefect_model_registry.flows.errors import ConfigError

    traceback = traceback or current().traceback  # `pmr --traceback ci retrain …` asks for the same
    if model is None and config is None:
        raise typer.BadParameter("give MODEL, or a --config whose model_name says which", param_hint="MODEL")
    overrides = parse_params(param or [])
    if model is not None:
        overrides["model_name"] = model
    if dataset is not None:
        overrides["dataset_uri"] = dataset
    if current().actor:
        overrides.setdefault("actor", current().actor)
    if local and current().registry:
        overrides.setdefault("registry", current().registry)
    try:
        layers = [read_config_file(config) if config else {}, overrides]
        if local:
            cfg = RetrainConfig.parse(merge_config({}, *layers), source=str(config or "the options"))
            cfg.preflight()
    except ConfigError as exc:
        say(f"ERROR: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    try:
        if local:
            code, run_id = run_local(cfg, timeout, traceback=traceback)
            name = cfg.model_name
        else:
            code, run_id, name = run_deployment(deployment, layers, timeout, poll, traceback=traceback)
        if code == EXIT_OK and expect_stage is not None and run_id is not None:
            code = check_registry(name, run_id, expect_stage.value)
    except Exception as exc:  # never a non-zero exit without a reason (typer.Exit is raised below, not here)
        if traceback:
            print_traceback(exc)
        say(f"ERROR: {describe_error(exc)}")
        raise typer.Exit(EXIT_FAILED) from None
    raise typer.Exit(code)


@app.command("decide")
def decide(
    run_id: Annotated[str, typer.Argument(help="The paused flow run (its id, as printed by the run).")],
    approve: Annotated[bool, typer.Option("--approve/--reject", help="Approve, or reject (needs --comment).")],
    reviewer: Annotated[str, typer.Option("--reviewer", help="Your name; it goes into the audit log.")],
    comment: Annotated[str, typer.Option("--comment", help="Why (required to reject).")] = "",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the run's answer.", min=1)] = 120,
) -> None:
    """Decide on a paused retraining run from the terminal, and learn whether the decision was accepted.

    Exit 0 when the run took the decision (it went on, or ended after a rejection); 1 when the run refused it
    (not an allowed reviewer, four-eyes) and paused again for someone else; 2 for bad input or a run that is
    not paused; 3 when the run did not answer in time.
    """
    from uuid import UUID

    from prefect_model_registry.flows.cli import reviews

    try:
        UUID(run_id)
    except ValueError:
        raise typer.BadParameter(f"not a flow run id: {run_id!r}", param_hint="RUN_ID") from None
    code, why = reviews.resume_and_wait(run_id, approve, reviewer, comment, timeout)
    label = {reviews.OK: "accepted", reviews.REFUSED: "REFUSED", reviews.BAD_INPUT: "ERROR"}.get(code, "TIMED OUT")
    say(f"{label}: {why}" + ("; the run waits again" if code == reviews.REFUSED else ""))
    raise typer.Exit(code)
