"""Lifecycle rules as pure functions: plan a change against a state, and apply an event to a state.

Planning raises a typed error for a change the lifecycle refuses; applying never fails, so replaying the
log always gives the same state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prefect_model_registry.registry.core.policy import (
    FIRST_VERSION_EXEMPT,
    ApprovalRules,
    Subject,
    check_promotion,
    exemption_applies,
    needs_approval,
    rules_from,
)
from prefect_model_registry.registry.errors import (
    ApprovalRequired,
    InvalidTransition,
    NothingToRollBack,
    PromotionBlocked,
    VersionDeleted,
)
from prefect_model_registry.registry.models import ModelState
from prefect_model_registry.registry.names import check_alias, check_stage

#: Which stage a version may move to from each stage. ``archived -> production`` only through rollback.
ALLOWED: dict[str, frozenset[str]] = {
    "none": frozenset({"staging", "archived"}),
    "staging": frozenset({"production", "archived", "none"}),
    "production": frozenset({"archived"}),
    "archived": frozenset({"staging", "none"}),
}


def rules_of(state: ModelState) -> ApprovalRules | None:
    """The model's approval policy, if one was set."""
    return rules_from(state.policy)


def approval_needed(state: ModelState, version: int, to: str, subject: Subject | None = None) -> bool:
    """Whether the model's own policy requires a recorded approval before ``version`` may enter ``to``.

    Recorded approvals count only if the policy in force lets their reviewer decide (see
    ``judge``); ``subject`` (the version's manifest facts) makes that exact.
    """
    return needs_approval(rules_of(state), state, version, to, subject)


def exempt_now(state: ModelState, to: str) -> bool:
    """Whether the first-version exemption of the model's policy would cover a move to ``to`` now."""
    return exemption_applies(rules_of(state), state, to)


def approval_matters(state: ModelState, to: str, *, through_staging: bool = False) -> bool:
    """Whether a move to ``to`` needs the version's manifest facts to judge recorded approvals or aliases."""
    rules = rules_of(state)
    targets = {to, "staging"} if through_staging else {to}
    return rules is not None and bool(targets & set(rules.stages))


def protected_on(state: ModelState, version: int, rules: ApprovalRules | None = None) -> list[str]:
    """The protected aliases that point at ``version`` (under ``rules``, default the model's policy)."""
    rules = rules if rules is not None else rules_of(state)
    if rules is None:
        return []
    return sorted(a for a, v in state.aliases.items() if v == version and a in rules.protected())


def protected_on_blocked(state: ModelState, rules: ApprovalRules) -> list[str]:
    """The aliases ``rules`` protect that point at a rejected or gate-blocked version (to remove with the policy)."""
    return sorted(a for a, v in state.aliases.items() if a in rules.protected() and state.blocked.get(v))


def check_alias_target(state: ModelState, alias: str, version: int, subject: Subject | None = None) -> None:
    """Refuse pointing a protected alias at a version that is not fit for production.

    A protected alias may point at a version that is not rejected or gate-blocked and that is (or was) in
    production, or holds an approval for production that counts under the policy in force (when the policy
    protects production). Moving it with a promotion to production is checked by that promotion instead.

    Raises:
        PromotionBlocked: the version was rejected or failed a gate.
        ApprovalRequired: the version has no approval for production that counts.

    """
    rules = rules_of(state)
    if rules is None or alias not in rules.protected():
        return
    reasons = state.blocked.get(version)
    if reasons:
        raise PromotionBlocked(
            f"alias {alias!r} of {state.name} is protected (policy of {state.name}) and cannot point at "
            f"v{version}: {', '.join(reasons)}"
        )
    if "production" not in rules.stages or version in state.ever_in_production or version == state.production:
        return
    # The first-version exemption covers a promotion, not an alias: it needs a promotion's event to be spent.
    if needs_approval(rules.model_copy(update={"first_version_exempt": False}), state, version, "production", subject):
        raise ApprovalRequired(
            f"alias {alias!r} of {state.name} is protected (policy of {state.name}): it may point only at a version "
            f"that is or was in production, or that holds an approval for production; v{version} has none that "
            f"counts (move it with the promotion: pmr promote --alias)"
        )


def check_not_deleted(state: ModelState, version: int) -> None:
    """Raise :class:`VersionDeleted` if retention removed ``version``."""
    if version in state.deleted:
        raise VersionDeleted(f"{state.name} v{version} was deleted (see its history)")


def plan_stage_change(
    state: ModelState,
    version: int,
    to: str,
    *,
    break_glass: bool = False,
    through_staging: bool = False,
    subject: Subject | None = None,
    aliases: Iterable[str] = (),
) -> dict[str, Any]:
    """Check that ``version`` may move to ``to`` and return the event data for it.

    Promoting to production archives the current production version in the same event, so there is never
    a moment with two production versions. A promotion that uses the first-version exemption says so
    (``exempt``); aliases that move with it are in the same event (``aliases``), covered by its checks.

    Args:
        state: the state the change is appended after.
        version: the version to move.
        to: the target stage.
        break_glass: skip the approval policy (never the lifecycle, gates or rejections); the caller logs it as a
            ``break_glass`` event.
        through_staging: for ``to="production"`` from ``none`` or ``archived``: both steps of the lifecycle in one
            event (``via: staging``), each checked as if taken alone (transition, gates, the approval each stage
            needs). MLflow's one-call transition, without skipping staging's checks.
        subject: the version's registrant and artifact hash (its manifest), to judge recorded approvals exactly.
        aliases: aliases to point at the version in the same event (to staging or production only); a protected
            one moved with a promotion to production is covered by it, with staging it is checked on its own.

    Raises:
        InvalidTransition: the lifecycle does not allow the move.
        PromotionBlocked: the version failed a gate or was rejected.
        ApprovalRequired: the policy protects ``to`` and no approval is recorded (unless ``break_glass``).

    """
    check_stage(to)
    check_not_deleted(state, version)
    moving = sorted({check_alias(a) for a in aliases})
    if moving and to not in ("staging", "production"):
        raise InvalidTransition(f"aliases move with a promotion to staging or production, not to {to}")
    current = state.stage_of(version)
    if through_staging and to != "production":
        raise InvalidTransition(f"through staging leads to production, not to {to}")
    if through_staging and current != "staging":
        staged = plan_stage_change(state, version, "staging", break_glass=break_glass, subject=subject)
        promoted = plan_stage_change(
            _staged(state, version), version, to, break_glass=break_glass, subject=subject, aliases=moving
        )
        return {**promoted, "from": staged["from"], "via": "staging"}
    if to == current:
        raise InvalidTransition(f"{state.name} v{version} is already in {to}")
    if to not in ALLOWED[current]:
        hint = " (stage it first)" if to == "production" else ""
        if current == "archived" and to == "production":
            hint = " (stage it first, or use rollback)"
        raise InvalidTransition(f"{state.name} v{version} cannot go from {current} to {to}{hint}")
    data: dict[str, Any] = {"from": current, "to": to, "archived": []}
    if to == "production":
        reasons = state.blocked.get(version)
        if reasons:
            raise PromotionBlocked(f"{state.name} v{version} cannot be promoted: {', '.join(reasons)}")
        if state.production is not None:
            data["archived"] = [state.production]
    rules = rules_of(state)
    if not break_glass:
        check_promotion(rules, state, version, to, subject)
        if exemption_applies(rules, state, to) and needs_approval(
            rules.model_copy(update={"first_version_exempt": False}) if rules is not None else None,
            state,
            version,
            to,
            subject,
        ):
            data["exempt"] = FIRST_VERSION_EXEMPT  # the exemption is spent by this event: the log says so
    if to == "staging":
        for alias in moving:
            check_alias_target(state, alias, version, subject)
    if moving:
        data["aliases"] = moving
    return data


def _staged(state: ModelState, version: int) -> ModelState:
    """``state`` as it would be with ``version`` in staging (to check the second step of a through-staging move)."""
    new = state.model_copy(deep=True)
    new.stages[version] = "staging"
    return new


def plan_rollback(state: ModelState, *, move_aliases: bool = False, break_glass: bool = False) -> dict[str, Any]:
    """Return the event data that puts back the production version before the current one.

    With ``move_aliases`` the aliases on the rolled-back version move to the restored one in the same event.
    A version rejected or blocked by a gate since it left production is never restored, unless ``break_glass``
    (then the event says so, and protected aliases still do not move onto it).

    Raises:
        NothingToRollBack: no current production version, or none before it.
        PromotionBlocked: the version before was rejected or failed a gate (and no break-glass).

    """
    current = state.production
    if current is None:
        raise NothingToRollBack(f"{state.name} has no production version to roll back")
    earlier = [v for v in state.production_history[:-1] if v != current]
    if not earlier:
        raise NothingToRollBack(f"{state.name} has no production version before v{current}")
    target = earlier[-1]
    reasons = state.blocked.get(target)
    if reasons and not break_glass:
        raise PromotionBlocked(
            f"{state.name} cannot roll back to v{target}: {', '.join(reasons)}; promote another version "
            f"(or roll back with the logged break-glass override)"
        )
    data: dict[str, Any] = {"from": current, "to": target}
    if break_glass:
        data["break_glass"] = True
    if move_aliases:
        keep = set(protected_on(state, current)) if reasons else set()
        data["aliases"] = sorted(a for a, v in state.aliases.items() if v == current and a not in keep)
    return data
