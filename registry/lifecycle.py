"""Lifecycle rules as pure functions: plan a change against a state, and apply an event to a state.

Planning raises a typed error for a change the lifecycle refuses; applying never fails, so replaying the
log always gives the same state.
"""

from __future__ import annotations

from typing import Any

from registry.errors import InvalidTransition, NothingToRollBack, PromotionBlocked, VersionDeleted
from registry.models import Event, ModelState
from registry.names import check_stage
from registry.policy import ApprovalRules, check_promotion, needs_approval

#: Which stage a version may move to from each stage. ``archived -> production`` only through rollback.
ALLOWED: dict[str, frozenset[str]] = {
    "none": frozenset({"staging", "archived"}),
    "staging": frozenset({"production", "archived", "none"}),
    "production": frozenset({"archived"}),
    "archived": frozenset({"staging", "none"}),
}


def rules_of(state: ModelState) -> ApprovalRules | None:
    """The model's approval policy, if one was set."""
    return ApprovalRules.model_validate(state.policy) if state.policy is not None else None


def approval_needed(state: ModelState, version: int, to: str) -> bool:
    """Whether the model's own policy requires a recorded approval before ``version`` may enter ``to``."""
    return needs_approval(rules_of(state), state.approvals, bool(state.production_history), version, to)


def check_not_deleted(state: ModelState, version: int) -> None:
    """Raise :class:`VersionDeleted` if retention removed ``version``."""
    if version in state.deleted:
        raise VersionDeleted(f"{state.name} v{version} was deleted (see its history)")


def plan_stage_change(
    state: ModelState, version: int, to: str, *, break_glass: bool = False, through_staging: bool = False
) -> dict[str, Any]:
    """Check that ``version`` may move to ``to`` and return the event data for it.

    Promoting to production archives the current production version in the same event, so there is never
    a moment with two production versions.

    Args:
        state: the state the change is appended after.
        version: the version to move.
        to: the target stage.
        break_glass: skip the approval policy (never the lifecycle, gates or rejections); the caller logs it as a
            ``break_glass`` event.
        through_staging: for ``to="production"`` from ``none`` or ``archived``: both steps of the lifecycle in one
            event (``via: staging``), each checked as if taken alone (transition, gates, the approval each stage
            needs). MLflow's one-call transition, without skipping staging's checks.

    Raises:
        InvalidTransition: the lifecycle does not allow the move.
        PromotionBlocked: the version failed a gate or was rejected.
        ApprovalRequired: the policy protects ``to`` and no approval is recorded (unless ``break_glass``).

    """
    check_stage(to)
    check_not_deleted(state, version)
    current = state.stage_of(version)
    if through_staging and to != "production":
        raise InvalidTransition(f"through staging leads to production, not to {to}")
    if through_staging and current != "staging":
        staged = plan_stage_change(state, version, "staging", break_glass=break_glass)
        data = plan_stage_change(_staged(state, version), version, to, break_glass=break_glass)
        return {**data, "from": staged["from"], "via": "staging"}
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
    if not break_glass:
        check_promotion(rules_of(state), state.approvals, bool(state.production_history), state.name, version, to)
    return data


def _staged(state: ModelState, version: int) -> ModelState:
    """``state`` as it would be with ``version`` in staging (to check the second step of a through-staging move)."""
    new = state.model_copy(deep=True)
    new.stages[version] = "staging"
    return new


def plan_rollback(state: ModelState, *, move_aliases: bool = False) -> dict[str, Any]:
    """Return the event data that puts back the production version before the current one.

    With ``move_aliases`` the aliases on the rolled-back version move to the restored one in the same event.

    Raises:
        NothingToRollBack: no current production version, or none before it.

    """
    current = state.production
    if current is None:
        raise NothingToRollBack(f"{state.name} has no production version to roll back")
    earlier = [v for v in state.production_history[:-1] if v != current]
    if not earlier:
        raise NothingToRollBack(f"{state.name} has no production version before v{current}")
    data: dict[str, Any] = {"from": current, "to": earlier[-1]}
    if move_aliases:
        data["aliases"] = sorted(a for a, v in state.aliases.items() if v == current)
    return data


def _block(state: ModelState, version: int, reason: str, on: bool) -> None:
    reasons = [r for r in state.blocked.get(version, []) if r != reason]
    if on:
        reasons.append(reason)
    if reasons:
        state.blocked[version] = reasons
    else:
        state.blocked.pop(version, None)


def _set_stage(state: ModelState, version: int, stage: str) -> None:
    if stage == "none":
        state.stages.pop(version, None)
    else:
        state.stages[version] = stage


def _was_in_production(state: ModelState, version: int) -> None:
    if version not in state.ever_in_production:
        state.ever_in_production = sorted([*state.ever_in_production, version])


def apply_event(state: ModelState, event: Event, event_hash: str) -> ModelState:
    """Return the state after ``event`` (a new object; ``state`` is not changed)."""
    new = state.model_copy(deep=True)
    v, d = event.version, event.data
    if event.type == "registered" and v is not None:
        new.registered = max(new.registered, v)
        for gate in d.get("failed_gates", []):
            _block(new, v, f"gate:{gate}", True)
    elif event.type in ("stage_changed", "break_glass") and v is not None:
        for old in d.get("archived", []):
            _set_stage(new, old, "archived")
        if d.get("from") == "production" and new.production_history[-1:] == [v]:
            new.production_history.pop()
        _set_stage(new, v, d["to"])
        if d["to"] == "production":
            new.production_history.append(v)
            _was_in_production(new, v)
    elif event.type == "alias_set" and v is not None:
        new.aliases[d["alias"]] = v
    elif event.type == "alias_removed":
        new.aliases.pop(d["alias"], None)
    elif event.type == "validated" and v is not None:
        _block(new, v, f"gate:{d['gate']}", not d.get("passed", False))
        if d.get("report_sha256"):
            new.reports.setdefault(v, {})[d["gate"]] = d["report_sha256"]
    elif event.type == "approved" and v is not None:
        _block(new, v, "rejected", False)
        stage = d.get("target_stage", "production")
        if stage not in new.approvals.get(v, []):
            new.approvals[v] = [*new.approvals.get(v, []), stage]
    elif event.type == "rejected" and v is not None:
        _block(new, v, "rejected", True)
        new.approvals.pop(v, None)
    elif event.type == "described":
        if v is None:
            new.model_description = d.get("description", "")
        else:
            new.descriptions[v] = d.get("description", "")
    elif event.type == "tagged" and v is not None:
        edits = new.tags.setdefault(v, {})
        edits.update(d.get("set", {}))
        edits.update(dict.fromkeys(d.get("removed", [])))  # None: removed, whatever the manifest says
    elif event.type == "deleted":
        gone = set(d.get("versions", []))
        new.deleted = sorted(set(new.deleted) | gone)
        for version in gone:
            new.stages.pop(version, None)
        # Retention never picks a version with a stage or alias; deleting a whole model clears them all.
        new.aliases = {a: x for a, x in new.aliases.items() if x not in gone}
        new.production_history = [x for x in new.production_history if x not in gone]
        new.ever_in_production = [x for x in new.ever_in_production if x not in gone]
    elif event.type == "policy_set":
        new.policy = dict(d)
    elif event.type == "rolled_back":
        _set_stage(new, d["from"], "archived")
        _set_stage(new, d["to"], "production")
        if new.production_history[-1:] == [d["from"]]:
            new.production_history.pop()
        if new.production_history[-1:] != [d["to"]]:
            new.production_history.append(d["to"])
        _was_in_production(new, d["to"])
        for alias in d.get("aliases", []):  # moved in the same event: no moment with aliases left behind
            new.aliases[alias] = d["to"]
    new.seq = event.seq
    new.head_hash = event_hash
    new.updated_at = event.at
    return new
