"""The audit log's event types, in one place: what each holds, the sentence it reads as, its Prefect event.

Every writer (the lifecycle), every reader (replay, ``verify``, the shape check), the CLI's sentences and the
Prefect event mapping use :class:`EventType` and :data:`SPECS`. The stored JSON does not change: an
:class:`EventType` *is* its string (``EventType.REGISTERED == "registered"``), so logs written before this module
existed read the same and hash the same. A type this release does not know is still read (a newer release may
add types); it has no spec and reads as its name.

A field's *kind* names its check, implemented once in ``core.event_shapes``: ``int`` (a version number), ``str``,
``bool``, ``stage``, ``ints``/``strs`` (lists), ``tags`` (``{str: str | None}``), ``rules`` (an approval policy);
``?`` after a kind allows ``null``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect_model_registry.registry.models import Event


class EventType(StrEnum):
    """Every kind of audit event."""

    REGISTERED = "registered"
    STAGE_CHANGED = "stage_changed"
    BREAK_GLASS = "break_glass"
    ALIAS_SET = "alias_set"
    ALIAS_REMOVED = "alias_removed"
    VALIDATED = "validated"
    APPROVED = "approved"
    REJECTED = "rejected"
    APPROVAL_TIMED_OUT = "approval_timed_out"
    DECISION_REFUSED = "decision_refused"
    SCORED = "scored"
    DESCRIBED = "described"
    TAGGED = "tagged"
    POLICY_SET = "policy_set"
    POLICY_PROPOSED = "policy_proposed"
    POLICY_APPROVED = "policy_approved"
    DELETED = "deleted"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True)
class FieldSpec:
    """One payload field replay reads: whether it must be there, and its kind (see the module docstring)."""

    required: bool
    kind: str


@dataclass(frozen=True)
class EventSpec:
    """What one event type holds and how it reads.

    Attributes:
        type: the type.
        names_version: the event is about one version (``event.version`` must be a version number).
        fields: payload fields replay reads, checked on every read.
        sentence: what the event changed, in words, without who or why.
        prefect_event: the Prefect event it is mapped to (``None``: mapped by its payload, or not at all).
        whole_data: the whole payload is of this kind (``policy_set`` holds the policy itself).
    """

    type: EventType
    names_version: bool
    fields: Mapping[str, FieldSpec] = field(default_factory=dict)
    sentence: Callable[[Event], str] = lambda e: f"{e.type} {_v(e)}".strip()
    prefect_event: str | None = None
    whole_data: str | None = None


def _v(event: Event) -> str:
    return f"v{event.version}" if event.version is not None else ""


def _opt(required: bool, kind: str) -> FieldSpec:
    return FieldSpec(required, kind)


def _moved(d: Mapping[str, Any]) -> str:
    return f" (aliases {', '.join(repr(a) for a in d['aliases'])} moved with it)" if d.get("aliases") else ""


def _policy_text(d: Mapping[str, Any]) -> str:
    return (
        f"{d.get('stages')} need approval"
        + (f", reviewers {d.get('reviewers')}" if d.get("reviewers") else "")
        + (", four-eyes" if d.get("four_eyes") else "")
        + ("" if d.get("first_version_exempt", True) else ", no first-version exemption")
        + (f", protected aliases {d.get('protected_aliases')}" if d.get("protected_aliases") else "")
    )


def _stage_move(e: Event) -> str:
    d = e.data
    return (
        f"{_v(e)} {d.get('from')} -> {d['via'] + ' -> ' if d.get('via') else ''}{d.get('to')}"
        + (f" (archived {', '.join(f'v{x}' for x in d.get('archived', []))})" if d.get("archived") else "")
        + (f" ({d['exempt']}: exempt by policy)" if d.get("exempt") else "")
        + _moved(d)
    )


def _tagged(e: Event) -> str:
    d = e.data
    return (
        f"{_v(e)} tags"
        + (f" set {', '.join(f'{k}={x}' for k, x in d.get('set', {}).items())}" if d.get("set") else "")
        + (f" removed {', '.join(d.get('removed', []))}" if d.get("removed") else "")
    )


_STAGE_MOVE = {
    "to": _opt(True, "stage"),
    "from": _opt(False, "stage"),
    "via": _opt(False, "stage?"),
    "archived": _opt(False, "ints"),
    "aliases": _opt(False, "strs"),
    "exempt": _opt(False, "str?"),
}

_SPECS = [
    EventSpec(
        EventType.REGISTERED,
        True,
        {"failed_gates": _opt(False, "strs"), "manifest_sha256": _opt(False, "str")},
        lambda e: f"{_v(e)} registered",
        "model.registered",
    ),
    EventSpec(EventType.STAGE_CHANGED, True, _STAGE_MOVE, _stage_move),
    EventSpec(
        EventType.BREAK_GLASS,
        True,
        _STAGE_MOVE,
        lambda e: (
            f"BREAK-GLASS {_v(e)} {e.data.get('from')} -> {e.data.get('to')} without the approval the policy "
            "requires" + _moved(e.data)
        ),
    ),
    EventSpec(
        EventType.ALIAS_SET,
        True,
        {"alias": _opt(True, "str"), "previous": _opt(False, "int?")},
        lambda e: (
            f"alias {e.data.get('alias')!r} -> {_v(e)}"
            + (f" (was v{e.data['previous']})" if e.data.get("previous") else "")
        ),
        "model.alias-set",
    ),
    EventSpec(
        EventType.ALIAS_REMOVED,
        False,
        {"alias": _opt(True, "str")},
        lambda e: f"alias {e.data.get('alias')!r} removed from {_v(e)}",
        "model.alias-removed",
    ),
    EventSpec(
        EventType.VALIDATED,
        True,
        {"gate": _opt(True, "str"), "passed": _opt(False, "bool"), "report_sha256": _opt(False, "str?")},
        lambda e: f"{_v(e)} gate {e.data.get('gate')!r} {'passed' if e.data.get('passed') else 'FAILED'}",
    ),
    EventSpec(
        EventType.APPROVED,
        True,
        {
            "target_stage": _opt(False, "stage"),
            "artifact_sha256": _opt(False, "str?"),
            "registrant": _opt(False, "str?"),
        },
        lambda e: (
            f"{_v(e)} approved"
            + (f" for {e.data['target_stage']}" if e.data.get("target_stage", "production") != "production" else "")
            + (f" (artifact {str(e.data['artifact_sha256'])[:12]})" if e.data.get("artifact_sha256") else "")
        ),
        "model.approved",
    ),
    EventSpec(EventType.REJECTED, True, {}, lambda e: f"{_v(e)} rejected", "model.rejected"),
    EventSpec(
        EventType.APPROVAL_TIMED_OUT,
        True,
        {},
        lambda e: f"{_v(e)} approval timed out (no decision)",
        "model.approval-timed-out",
    ),
    EventSpec(
        EventType.DECISION_REFUSED,
        True,
        {},
        lambda e: f"{_v(e)} decision REFUSED (the policy does not let this reviewer decide)",
        "model.approval-refused",
    ),
    EventSpec(EventType.SCORED, True, {}, lambda e: f"{_v(e)} scored a batch"),
    EventSpec(
        EventType.DESCRIBED,
        False,
        {"description": _opt(False, "str")},
        lambda e: f"{_v(e) or 'model'} description set",
    ),
    EventSpec(EventType.TAGGED, True, {"set": _opt(False, "tags"), "removed": _opt(False, "strs")}, _tagged),
    EventSpec(
        EventType.POLICY_SET,
        False,
        {},
        lambda e: f"approval policy set: {_policy_text(e.data)}",
        "model.policy-set",
        whole_data="rules",
    ),
    EventSpec(
        EventType.POLICY_PROPOSED,
        False,
        {"rules": _opt(False, "rules")},
        lambda e: (
            f"approval policy change PROPOSED (#{e.seq}, needs a second person): "
            + _policy_text(e.data.get("rules") or {})
        ),
        "model.policy-proposed",
    ),
    EventSpec(
        EventType.POLICY_APPROVED,
        False,
        {"rules": _opt(False, "rules")},
        lambda e: (
            f"approval policy change #{e.data.get('proposal')} (proposer {e.data.get('proposed_by')}) APPROVED: "
            + _policy_text(e.data.get("rules") or {})
        ),
        "model.policy-set",
    ),
    EventSpec(
        EventType.DELETED,
        False,
        {"versions": _opt(False, "ints")},
        lambda e: (
            ("model deleted: " if e.data.get("whole_model") else "deleted ")
            + ", ".join(f"v{x}" for x in e.data.get("versions", []))
        ),
        "model.deleted",
    ),
    EventSpec(
        EventType.ROLLED_BACK,
        False,
        {"from": _opt(True, "int"), "to": _opt(True, "int"), "aliases": _opt(False, "strs")},
        lambda e: (
            ("BREAK-GLASS " if e.data.get("break_glass") else "")
            + f"rolled back v{e.data.get('from')} -> v{e.data.get('to')}"
            + (f" (moved {', '.join(e.data['aliases'])})" if e.data.get("aliases") else "")
        ),
        "model.rolled-back",
    ),
]

#: Every known type's spec.
SPECS: dict[EventType, EventSpec] = {spec.type: spec for spec in _SPECS}
#: Fields any type may carry.
ANY_FIELDS = {"removed_aliases": _opt(False, "strs")}


def spec_of(event_type: str) -> EventSpec | None:
    """The spec of ``event_type``, or ``None`` for a type this release does not know."""
    try:
        return SPECS[EventType(event_type)]
    except ValueError:
        return None


def describe_change(event: Event) -> str:
    """What an event changed, in words, without who or why (e.g. ``v3 staging -> production``)."""
    spec = spec_of(event.type)
    text = spec.sentence(event) if spec else f"{event.type} {_v(event)}".strip()
    if event.data.get("removed_aliases"):  # a protected alias never stays on a rejected or gate-blocked version
        text += f" (removed protected alias {', '.join(repr(a) for a in event.data['removed_aliases'])})"
    return text


def describe(event: Event) -> str:
    """A one-line human sentence for an event, e.g. ``v3 staging -> production by dana: approved``."""
    return f"{describe_change(event)} by {event.actor}" + (f": {event.reason}" if event.reason else "")


__all__ = ["ANY_FIELDS", "SPECS", "EventSpec", "EventType", "FieldSpec", "describe", "describe_change", "spec_of"]
