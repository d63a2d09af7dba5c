"""Flows that change a model's lifecycle on their own: promote, archive, roll back, decide.

Each is runnable from the UI, the CLI, a deployment or an automation, and leaves an audit event with who and
why, a Prefect event to hang automations on, and a fresh registry overview.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Literal, ParamSpec, TypeVar

from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.runtime import flow_run
from prefect.states import Failed

from prefect_model_registry.flows.core import publish, trust
from prefect_model_registry.flows.core.opkeys import operation_key
from prefect_model_registry.flows.errors import PipelineError
from prefect_model_registry.flows.tasks import run_actor
from prefect_model_registry.registry import Event, Registry
from prefect_model_registry.registry.errors import RegistryError

P = ParamSpec("P")
R = TypeVar("R")


def failed_with_reason(fn: Callable[P, R]) -> Callable[P, R | Any]:
    """End a flow stopped by a deliberate failure Failed, with the reason as the state's message.

    A typed error of the pipeline or the registry (a gate, a rejection, a refused decision, unusable data) makes
    the run return ``Failed(message="GateFailed: <reason>")`` instead of raising: the Prefect UI and the run's log
    line under ``prefect deployment run --watch`` ("Finished in state Failed('GateFailed: …')") show the reason, and
    the flow engine logs no traceback for it (a deployment's flow-run process still logs one as it exits, which
    ``pmr ci`` leaves out). The error is the state's data, so calling the flow still raises it. Put it under
    ``@flow``; it acts for the flow's own run only (``other_flow.fn(...)`` inside another flow raises).
    """

    @functools.wraps(fn)
    def body(*args: P.args, **kwargs: P.kwargs) -> R | Any:
        try:
            return fn(*args, **kwargs)
        except (PipelineError, RegistryError) as exc:
            ctx = FlowRunContext.get()
            if ctx is None or getattr(ctx.flow, "fn", None) is not body:
                raise
            return Failed(message=f"{type(exc).__name__}: {exc}", data=exc)

    # Prefect validates parameters against the signature's annotations, resolved in the wrapper's module: give it
    # the flow's own, resolved where it is defined (``from __future__ import annotations`` makes them strings).
    body.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    return body


def promote_version(
    reg: Registry,
    model_name: str,
    version: int,
    stage: str,
    *,
    actor: str,
    reason: str,
    aliases: list[str] | None = None,
) -> Event:
    """Promote with its aliases in the same event (so a protected alias is covered by the promotion's approval).

    ``aliases`` defaults to ``["champion"]`` for production and to none for other stages.
    """
    return reg.promote(
        model_name,
        version,
        stage,
        actor=actor,
        reason=reason,
        run_id=flow_run.id,
        operation_key=operation_key(model_name, f"v{version}", "promote", stage),
        aliases=(["champion"] if stage == "production" else []) if aliases is None else aliases,
    )


@flow(name="promote-model")
@failed_with_reason
def promote_model(
    model_name: str,
    version: int,
    stage: Literal["staging", "production"] = "production",
    reason: str = "",
    aliases: list[str] | None = None,
    registry: str | None = None,
    actor: str | None = None,
) -> dict[str, object]:
    """Move ``version`` to ``stage`` (production archives the current one atomically) and move ``aliases``.

    Args:
        model_name: registry model name.
        version: version to promote.
        stage: target stage.
        reason: why (goes into the audit log).
        aliases: aliases to point at the version afterwards (default ``["champion"]`` when promoting to
            production, as the retraining pipeline does; pass ``[]`` to move none).
        registry: registry location (default ``PMR_REGISTRY_URI``).
        actor: who promotes (default ``PMR_ACTOR`` or the deployment).
    """
    trust.guard(registry=registry)  # a deployment's run opens only a registry the worker allows
    reg, who = Registry.open(registry), run_actor(actor)
    event = promote_version(reg, model_name, version, stage, actor=who, reason=reason, aliases=aliases)
    publish.overview(reg)
    get_run_logger().info("%s", event)
    return {"model": model_name, "version": version, "stage": stage, "archived": event.data["archived"]}


@flow(name="archive-model")
@failed_with_reason
def archive_model(
    model_name: str, version: int, reason: str = "", registry: str | None = None, actor: str | None = None
) -> dict[str, object]:
    """Archive ``version`` (it can be staged again later).

    Args:
        model_name: registry model name.
        version: version to archive.
        reason: why (goes into the audit log).
        registry: registry location (default ``PMR_REGISTRY_URI``).
        actor: who archives (default ``PMR_ACTOR`` or the deployment).
    """
    trust.guard(registry=registry)  # a deployment's run opens only a registry the worker allows
    reg, who = Registry.open(registry), run_actor(actor)
    reg.archive(
        model_name,
        version,
        actor=who,
        reason=reason,
        run_id=flow_run.id,
        operation_key=operation_key(model_name, f"v{version}", "promote", "archived"),
    )
    publish.overview(reg)
    return {"model": model_name, "version": version, "stage": "archived"}


@flow(name="rollback-model")
@failed_with_reason
def rollback_model(
    model_name: str, reason: str, move_aliases: bool = True, registry: str | None = None, actor: str | None = None
) -> dict[str, object]:
    """Put back the production version before the current one, archiving the current, in one step.

    Args:
        model_name: registry model name.
        reason: why (goes into the audit log; required).
        move_aliases: move the aliases of the rolled-back version (e.g. ``champion``) to the restored one.
        registry: registry location (default ``PMR_REGISTRY_URI``).
        actor: who rolls back (default ``PMR_ACTOR`` or the deployment).
    """
    trust.guard(registry=registry)  # a deployment's run opens only a registry the worker allows
    reg, who = Registry.open(registry), run_actor(actor)
    # The aliases move in the rollback's own event: a crash cannot leave them on the rolled-back version.
    event = reg.rollback(
        model_name,
        actor=who,
        reason=reason,
        run_id=flow_run.id,
        move_aliases=move_aliases,
        operation_key=operation_key(model_name, "rollback"),
    )
    old, new = event.data["from"], event.data["to"]
    moved = list(event.data.get("aliases", []))
    publish.overview(reg)
    get_run_logger().info("%s", event)
    return {"from": old, "to": new, "aliases": moved}


@flow(name="decide-model")
@failed_with_reason
def decide_model(
    model_name: str,
    version: int,
    approve: bool,
    reviewer: str,
    comment: str = "",
    promote: bool = True,
    four_eyes: bool = False,
    registry: str | None = None,
) -> dict[str, object]:
    """Record a reviewer's decision outside a paused run (e.g. a version left staged by a timeout).

    Args:
        model_name: registry model name.
        version: version decided on.
        approve: approve (and, with ``promote``, move to production) or reject.
        reviewer: who decides (goes into the audit log).
        comment: why; required to reject.
        promote: promote to production when approved.
        four_eyes: refuse a registrant approving their own version.
        registry: registry location (default ``PMR_REGISTRY_URI``).
    """
    trust.guard(registry=registry)
    reg = Registry.open(registry)
    event = reg.record_decision(
        model_name,
        version,
        approved=approve,
        reviewer=reviewer,
        comment=comment,
        run_id=flow_run.id,
        four_eyes=four_eyes,
        operation_key=operation_key(model_name, f"v{version}", "decision"),
    )
    stage = reg.state(model_name).stage_of(version)
    if approve and promote:
        promote_model.fn(
            model_name, version, "production", reason=f"approved by {reviewer}", registry=registry, actor=reviewer
        )
        stage = "production"
    publish.overview(reg)
    return {"model": model_name, "version": version, "decision": event.type, "stage": stage}
