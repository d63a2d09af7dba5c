"""Replay: what each audit event does to a model's state (``apply_event``), one handler per event type.

The state of a model is its log replayed from the start (or from a snapshot that was); the log's writers plan a
change against a state with ``lifecycle`` and append its event, readers apply it here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from prefect_model_registry.registry.events import EventType, spec_of
from prefect_model_registry.registry.models import Event, ModelState


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
    if state.first_production is None:
        state.first_production = version  # spends the first-version exemption, for good


def _approval(state: ModelState, event: Event) -> dict[str, Any]:
    """The standing-approval record an ``approved`` event adds (see ``ModelState.approved_by``)."""
    d = event.data
    record: dict[str, Any] = {
        "stage": d.get("target_stage", "production"),
        "reviewer": event.actor,
        "seq": event.seq,
        "artifact_sha256": d.get("artifact_sha256"),
        "registrant": d.get("registrant"),
    }
    if record["artifact_sha256"] is None:  # an earlier release's approval: judged by the policy at its position
        record["policy"] = state.policy
    return record


def _registered(new: ModelState, old: ModelState, event: Event, v: int) -> None:
    new.registered = max(new.registered, v)
    for gate in event.data.get("failed_gates", []):
        _block(new, v, f"gate:{gate}", True)


def _stage_changed(new: ModelState, old: ModelState, event: Event, v: int) -> None:
    d = event.data
    for archived in d.get("archived", []):
        _set_stage(new, archived, "archived")
    if d.get("from") == "production" and new.production_history[-1:] == [v]:
        new.production_history.pop()
    _set_stage(new, v, d["to"])
    if d["to"] == "production":
        new.production_history.append(v)
        _was_in_production(new, v)
    for alias in d.get("aliases", []):  # moved in the promotion's own event, covered by its checks
        new.aliases[alias] = v


def _alias_set(new: ModelState, old: ModelState, event: Event, v: int) -> None:
    new.aliases[event.data["alias"]] = v


def _alias_removed(new: ModelState, old: ModelState, event: Event, v: int | None) -> None:
    new.aliases.pop(event.data["alias"], None)


def _validated(new: ModelState, old: ModelState, event: Event, v: int) -> None:
    d = event.data
    _block(new, v, f"gate:{d['gate']}", not d.get("passed", False))
    if d.get("report_sha256"):
        new.reports.setdefault(v, {})[d["gate"]] = d["report_sha256"]


def _approved(new: ModelState, old: ModelState, event: Event, v: int) -> None:
    _block(new, v, "rejected", False)
    stage = event.data.get("target_stage", "production")
    if stage not in new.approvals.get(v, []):
        new.approvals[v] = [*new.approvals.get(v, []), stage]
    new.approved_by[v] = [*new.approved_by.get(v, []), _approval(old, event)]


def _rejected(new: ModelState, old: ModelState, event: Event, v: int) -> None:
    _block(new, v, "rejected", True)
    new.approvals.pop(v, None)
    new.approved_by.pop(v, None)


def _described(new: ModelState, old: ModelState, event: Event, v: int | None) -> None:
    if v is None:
        new.model_description = event.data.get("description", "")
    else:
        new.descriptions[v] = event.data.get("description", "")


def _tagged(new: ModelState, old: ModelState, event: Event, v: int) -> None:
    edits = new.tags.setdefault(v, {})
    edits.update(event.data.get("set", {}))
    edits.update(dict.fromkeys(event.data.get("removed", [])))  # None: removed, whatever the manifest says


def _deleted(new: ModelState, old: ModelState, event: Event, v: int | None) -> None:
    gone = set(event.data.get("versions", []))
    new.deleted = sorted(set(new.deleted) | gone)
    for version in gone:
        new.stages.pop(version, None)
    # Retention never picks a version with a stage or alias; deleting a whole model clears them all.
    new.aliases = {a: x for a, x in new.aliases.items() if x not in gone}
    new.production_history = [x for x in new.production_history if x not in gone]
    new.ever_in_production = [x for x in new.ever_in_production if x not in gone]
    for version in gone:
        new.approved_by.pop(version, None)


def _policy_set(new: ModelState, old: ModelState, event: Event, v: int | None) -> None:
    new.policy = dict(event.data)


def _policy_proposed(new: ModelState, old: ModelState, event: Event, v: int | None) -> None:
    new.policy_proposal = {"seq": event.seq, "by": event.actor, "rules": dict(event.data.get("rules") or {})}


def _policy_approved(new: ModelState, old: ModelState, event: Event, v: int | None) -> None:
    new.policy = dict(event.data.get("rules") or {})
    new.policy_proposal = None


def _rolled_back(new: ModelState, old: ModelState, event: Event, v: int | None) -> None:
    d = event.data
    _set_stage(new, d["from"], "archived")
    _set_stage(new, d["to"], "production")
    if new.production_history[-1:] == [d["from"]]:
        new.production_history.pop()
    if new.production_history[-1:] != [d["to"]]:
        new.production_history.append(d["to"])
    _was_in_production(new, d["to"])
    for alias in d.get("aliases", []):  # moved in the same event: no moment with aliases left behind
        new.aliases[alias] = d["to"]


#: What each event type does to a state (types absent here change nothing but the log's head: scored,
#: approval_timed_out, decision_refused, and types a newer release may add).
_APPLY: dict[EventType, Callable[[ModelState, ModelState, Event, Any], None]] = {
    EventType.REGISTERED: _registered,
    EventType.STAGE_CHANGED: _stage_changed,
    EventType.BREAK_GLASS: _stage_changed,
    EventType.ALIAS_SET: _alias_set,
    EventType.ALIAS_REMOVED: _alias_removed,
    EventType.VALIDATED: _validated,
    EventType.APPROVED: _approved,
    EventType.REJECTED: _rejected,
    EventType.DESCRIBED: _described,
    EventType.TAGGED: _tagged,
    EventType.DELETED: _deleted,
    EventType.POLICY_SET: _policy_set,
    EventType.POLICY_PROPOSED: _policy_proposed,
    EventType.POLICY_APPROVED: _policy_approved,
    EventType.ROLLED_BACK: _rolled_back,
}


def held(state: ModelState) -> set[tuple[str, str, int]]:
    """Who holds what: ``("stage", stage, version)`` for every stage but ``archived``, ``("alias", alias, version)``."""
    found = {("stage", stage, v) for v, stage in state.stages.items() if stage != "archived"}
    found.update(("alias", alias, v) for alias, v in state.aliases.items())
    return found


def _record_change(new: ModelState, old: ModelState, event: Event) -> None:
    """Append the timeline entry for ``event`` if it changed who holds a stage or an alias."""
    if new.stages == old.stages and new.aliases == old.aliases:
        return
    before, after = held(old), held(new)
    if before == after:
        return
    new.timeline.append(
        {
            "seq": event.seq,
            "at": event.at.isoformat(),
            "actor": event.actor,
            "type": event.type,
            "version": event.version,
            "reason": event.reason,
            "start": [list(x) for x in sorted(after - before)],
            "end": [list(x) for x in sorted(before - after)],
        }
    )


def _copy(state: ModelState) -> ModelState:
    """A deep copy of ``state`` whose timeline list is new but shares its entries (never changed once appended).

    Copying every entry on every event would make a replay quadratic in the model's stage and alias changes.
    """
    return copy.deepcopy(state, {id(state.timeline): list(state.timeline)})


def apply_event(state: ModelState, event: Event, event_hash: str) -> ModelState:
    """Return the state after ``event`` (a new object; ``state`` is not changed)."""
    new = _copy(state)
    spec = spec_of(event.type)
    # A type about one version changes nothing without one (the shape check refuses such an event on read).
    if spec is not None and spec.type in _APPLY and (event.version is not None or not spec.names_version):
        _APPLY[spec.type](new, state, event, event.version)
    for alias in event.data.get("removed_aliases", []):  # a protected alias leaves a rejected or blocked version
        new.aliases.pop(alias, None)
    _record_change(new, state, event)
    new.seq = event.seq
    new.head_hash = event_hash
    new.updated_at = event.at
    return new
