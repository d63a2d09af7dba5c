"""The approval policy a model keeps in its own audit log, enforced by the lifecycle for every caller.

A ``policy_set`` event records which stages need a recorded approval, who may approve, whether the registrant may
approve their own version (four-eyes), and whether a model's very first production version is exempt. The
lifecycle then refuses a promotion to a protected stage unless an ``approved`` event for that version and stage
is in the log, whoever asks: a flow, ``pmr promote`` or a direct API call. A break-glass override exists for
incidents; it is an audit event of its own (``break_glass``). Rollback to a version that was in production before
stays allowed: it was approved (or exempt) when it got there.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from registry.errors import ApprovalRefused, ApprovalRequired


class ApprovalRules(BaseModel):
    """Who must approve what, for one model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stages: list[Literal["staging", "production"]] = Field(
        default_factory=lambda: ["production"], description="Stages a version may enter only with an approval."
    )
    reviewers: list[str] | None = Field(default=None, description="Who may approve (anyone when None).")
    four_eyes: bool = Field(default=False, description="The registrant may not approve their own version.")
    first_version_exempt: bool = Field(
        default=True, description="A model's first production version needs no approval (nothing to protect yet)."
    )


def needs_approval(
    rules: ApprovalRules | None, approvals: dict[int, list[str]], had_production: bool, version: int, to: str
) -> bool:
    """Whether moving ``version`` to ``to`` still needs a recorded approval under ``rules``."""
    if rules is None or to not in rules.stages or to in approvals.get(version, []):
        return False
    return not (rules.first_version_exempt and not had_production)


def check_promotion(
    rules: ApprovalRules | None, approvals: dict[int, list[str]], had_production: bool, name: str, version: int, to: str
) -> None:
    """Refuse moving ``version`` to ``to`` when the policy protects ``to`` and no approval for it is recorded.

    Raises:
        ApprovalRequired: no recorded approval for this version and stage.

    """
    if not needs_approval(rules, approvals, had_production, version, to):
        return
    raise ApprovalRequired(
        f"{name} v{version} needs a recorded approval to enter {to} (policy of {name}); "
        f"record one (pmr approve / a reviewer in the UI) or use the logged break-glass override"
    )


def check_reviewer(rules: ApprovalRules | None, name: str, version: int, reviewer: str, registrant: str) -> None:
    """Refuse a decision the model's policy does not allow.

    Raises:
        ApprovalRefused: the reviewer is not allowed, or registered the version while four-eyes is on.

    """
    if rules is None:
        return
    if rules.reviewers is not None and reviewer not in rules.reviewers:
        raise ApprovalRefused(f"{reviewer!r} is not an allowed reviewer of {name} (policy of {name})")
    if rules.four_eyes and reviewer == registrant:
        raise ApprovalRefused(f"four-eyes rule: {reviewer!r} registered {name} v{version} and cannot approve it")
