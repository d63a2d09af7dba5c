"""The human approval step: the form a reviewer fills in the Prefect UI, the policy, and the wait."""

from __future__ import annotations

import os
import re
import shlex
from typing import TYPE_CHECKING, Literal

from prefect import get_run_logger
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from prefect_model_registry.registry.core.policy import ApprovalRules, Subject, needs_approval, production_only
from prefect_model_registry.registry.models import ModelState

if TYPE_CHECKING:
    from uuid import UUID

    from prefect.context import FlowRunContext


class ApprovalPolicy(BaseModel):
    """Who must decide, and how long to wait."""

    required_for: list[Literal["staging", "production"]] = Field(
        default_factory=production_only, description="Target stages that need a reviewer's decision."
    )
    reviewers: list[str] | None = Field(default=None, description="Only these people may decide (any if empty).")
    four_eyes: bool = Field(default=False, description="The registrant may not approve their own version.")
    timeout_seconds: int = Field(default=3600, ge=1, description="How long to wait for a decision.")
    poll_interval_seconds: int = Field(default=10, ge=1, description="How often a paused run checks for one.")
    mode: Literal["pause", "suspend"] = Field(
        default="pause",
        description="pause keeps the process waiting; suspend frees the worker (deployments only) and re-runs "
        "the flow from the top on resume, where registration is idempotent.",
    )
    max_attempts: int = Field(default=3, ge=1, description="Refused decisions (e.g. four-eyes) before giving up.")
    first_version_exempt: bool = Field(
        default=True,
        description="A model's first production version needs no approval (nothing in production to protect).",
    )

    def rules(self) -> ApprovalRules:
        """The policy as the registry keeps it (recorded once per model; an administrator's policy wins)."""
        return ApprovalRules(
            stages=list(self.required_for),
            reviewers=self.reviewers,
            four_eyes=self.four_eyes,
            first_version_exempt=self.first_version_exempt,
        )

    def wants_review(self, state: ModelState, version: int, stage: str, subject: Subject | None = None) -> bool:
        """Whether this run's policy asks a reviewer before ``version`` enters ``stage`` (none recorded counts)."""
        return needs_approval(self.rules(), state, version, stage, subject)


# The rules live in the JSON schema too: Prefect checks a resume against the schema (the UI and the API
# refuse bad input and the run stays paused), while a pydantic validator would only run inside the flow.
_NOT_BLANK = r"\S"
_COMMENT_WHEN_REJECTING: JsonDict = {
    "if": {"properties": {"approve": {"const": False}}},
    "then": {"properties": {"comment": {"pattern": _NOT_BLANK}}, "required": ["comment"]},
}


class ApprovalDecision(RunInput):
    """The reviewer's decision, as the Prefect UI's Resume dialog shows it.

    ``approve`` and ``reviewer`` have no default so the dialog does not label them "(Optional)" and an API
    caller must state both; the UI's toggle starts off, so leaving it untouched is a rejection.
    """

    model_config = ConfigDict(json_schema_extra=_COMMENT_WHEN_REJECTING)

    approve: bool = Field(
        title="Approve this version",
        description="Switch on to approve and promote it. Leave off to reject it, and say why in the comment.",
    )
    reviewer: str = Field(
        title="Your name", pattern=_NOT_BLANK, description="It goes into the registry's audit log with your decision."
    )
    comment: str = Field(
        default="", title="Comment", description="Why you decided so. Required when you reject the version."
    )

    @model_validator(mode="after")
    def _complete(self) -> ApprovalDecision:
        if not self.reviewer.strip():
            raise ValueError("reviewer: give your name, it is recorded in the audit log")
        if not self.approve and not self.comment.strip():
            raise ValueError("comment: say why you reject the version")
        return self


#: How the run logs the decision a pause received: this, the pause key, ``:``; then its verdict and reviewer.
RECEIVED = "decision received for pause "


def wait_for_decision(description: str, policy: ApprovalPolicy, key: str) -> ApprovalDecision:
    """Pause (or suspend) the running flow until a reviewer submits the form.

    Raises:
        prefect.exceptions.FlowPauseTimeout: no decision within ``policy.timeout_seconds``.
    """
    # Only the description: initial values passed here would replace the fields (Prefect rebuilds them from the
    # bare type), dropping their titles, hints and the reviewer's pattern from the schema the server checks.
    form = ApprovalDecision.with_initial_data(description=description)
    get_run_logger().warning("waiting for a reviewer's decision: %s", where_to_decide(key))
    if policy.mode == "suspend":
        decision = suspend_flow_run(wait_for_input=form, timeout=policy.timeout_seconds, key=key)
    else:
        decision = pause_flow_run(
            wait_for_input=form, timeout=policy.timeout_seconds, poll_interval=policy.poll_interval_seconds, key=key
        )
    assert decision is not None
    # Ties what the run says next (refused or accepted) to this pause, so whoever gave this input (``pmr approve``
    # finds its pause in the run's states) reads its own outcome, never the one of an earlier decision. A warning,
    # as the refusal it precedes: a run logging only warnings to the API still ties them.
    get_run_logger().warning(
        "%s%s: %s by %r", RECEIVED, key, "approve" if decision.approve else "reject", decision.reviewer
    )
    return decision


def where_to_decide(key: str | None = None) -> str:
    """Where a reviewer decides on the current paused run: the UI's address, and the ``pmr`` commands.

    ``key`` is the pause's key (``approval-v<version>-<stage>-<attempt>``, as the retraining flow names them): with
    it and the run's model, the commands are ``pmr approve``/``pmr reject`` of that version; without, ``pmr ci
    decide`` of the run. A run started without ``PREFECT_API_URL`` pauses on a temporary API that lives only as long
    as its process; printing its address is the only way for a person to reach it.
    """
    from prefect.context import FlowRunContext
    from prefect.utilities.urls import url_for

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return "no flow run (nothing to decide)"
    api = str(ctx.client.api_url).rstrip("/")
    ui = url_for(ctx.flow_run)
    commands = _commands(ctx, ctx.flow_run.id, key)
    shell = "; ".join(f"{what}: PREFECT_API_URL={api} {command}" for what, command in commands)
    return f"Resume in the Prefect UI: {ui}; or from a shell, {shell}" if ui else f"from a shell, {shell}"


_PAUSE_KEY = re.compile(r"approval-v(\d+)-(staging|production)-\d+")


def _commands(ctx: FlowRunContext, run_id: UUID, key: str | None) -> list[tuple[str, str]]:
    """``(what, command)`` for approving and rejecting what the run waits for (the reviewer is ``--actor``)."""
    config = ctx.parameters.get("config") if ctx.parameters else None
    if isinstance(config, BaseModel):
        config = config.model_dump()
    name = config.get("model_name") if isinstance(config, dict) else None
    match = _PAUSE_KEY.fullmatch(key or "")
    if not name or match is None:
        decide = f"pmr ci decide {run_id} --reviewer 'YOUR NAME'"
        return [("approve", f"{decide} --approve --comment '...'"), ("reject", f"{decide} --reject --comment why")]
    registry = config.get("registry") if isinstance(config, dict) else None
    if isinstance(registry, str) and registry and "://" not in registry:
        registry = os.path.abspath(registry)  # the run's directory: the reviewer's shell may be elsewhere
    where = f"--registry {shlex.quote(registry)} " if isinstance(registry, str) and registry else ""
    pmr = f"pmr {where}--actor 'YOUR NAME'"
    version, stage = match.group(1), match.group(2)
    target = f"{shlex.quote(str(name))} {version} --stage {stage}"
    return [("approve", f"{pmr} approve {target} --comment '...'"), ("reject", f"{pmr} reject {target} --comment why")]
