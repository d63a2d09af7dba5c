"""What each kind of audit event must hold, checked on every event read (``parse_event``).

The hash chain proves an event was not changed after the next one was written; it says nothing about whether
the writer put the right fields in. An event with a field missing or of the wrong type, chained correctly, used
to stop every read of its model with a ``KeyError`` (or, mistyped, to replay a state that is not one: a version
"in stage 5"). Each event is checked against its kind's fields here first, and refused with
``MalformedEvent`` naming it. Kinds and fields this release does not know are let through
(a newer release may add them); replay ignores what it does not read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from prefect_model_registry.registry.errors import MalformedEvent
from prefect_model_registry.registry.models import Event
from prefect_model_registry.registry.names import STAGES

Check = Callable[[Any], bool]


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _str(value: Any) -> bool:
    return isinstance(value, str)


def _bool(value: Any) -> bool:
    return isinstance(value, bool)


def _stage(value: Any) -> bool:
    return isinstance(value, str) and value in STAGES


def _list_of(check: Check) -> Check:
    return lambda value: isinstance(value, list) and all(check(item) for item in value)


def _or_none(check: Check) -> Check:
    return lambda value: value is None or check(value)


def _tags(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and _or_none(_str)(v) for k, v in value.items())


def _rules(value: Any) -> bool:
    from prefect_model_registry.registry.core.policy import (
        ApprovalRules,  # the policy's own model says what a policy is
    )

    if not isinstance(value, dict):
        return False
    try:
        ApprovalRules.model_validate(value)
    except (ValidationError, ValueError, TypeError):
        return False
    return True


#: Per kind: whether it names a version, then ``{field: (required, check)}`` for the fields replay reads.
_STAGE_MOVE = {
    "to": (True, _stage),
    "from": (False, _stage),
    "via": (False, _or_none(_stage)),
    "archived": (False, _list_of(_int)),
    "aliases": (False, _list_of(_str)),
    "exempt": (False, _or_none(_str)),
}
SHAPES: dict[str, tuple[bool, dict[str, tuple[bool, Check]]]] = {
    "registered": (True, {"failed_gates": (False, _list_of(_str)), "manifest_sha256": (False, _str)}),
    "stage_changed": (True, _STAGE_MOVE),
    "break_glass": (True, _STAGE_MOVE),
    "alias_set": (True, {"alias": (True, _str), "previous": (False, _or_none(_int))}),
    "alias_removed": (False, {"alias": (True, _str)}),
    "validated": (
        True,
        {"gate": (True, _str), "passed": (False, _bool), "report_sha256": (False, _or_none(_str))},
    ),
    "approved": (
        True,
        {
            "target_stage": (False, _stage),
            "artifact_sha256": (False, _or_none(_str)),
            "registrant": (False, _or_none(_str)),
        },
    ),
    "rejected": (True, {}),
    "described": (False, {"description": (False, _str)}),
    "tagged": (True, {"set": (False, _tags), "removed": (False, _list_of(_str))}),
    "deleted": (False, {"versions": (False, _list_of(_int))}),
    "rolled_back": (False, {"from": (True, _int), "to": (True, _int), "aliases": (False, _list_of(_str))}),
    "policy_proposed": (False, {"rules": (False, _rules)}),
    "policy_approved": (False, {"rules": (False, _rules)}),
    "approval_timed_out": (True, {}),
    "decision_refused": (True, {}),
    "scored": (True, {}),
}
#: Fields any kind may carry.
_ANY = {"removed_aliases": (False, _list_of(_str))}


def check_shape(event: Event) -> Event:
    """Return ``event`` if it holds what its kind needs; otherwise raise :class:`MalformedEvent` naming it."""
    shape = SHAPES.get(event.type)
    fields = {**_ANY, **(shape[1] if shape else {})}
    if shape is not None and shape[0] and not _int(event.version):
        raise MalformedEvent(event.model, event.seq, f"a {event.type} event names no version")
    for field, (required, check) in fields.items():
        if field not in event.data:
            if required:
                raise MalformedEvent(event.model, event.seq, f"its {event.type} data lacks {field!r}")
            continue
        if not check(event.data[field]):
            raise MalformedEvent(
                event.model, event.seq, f"{field!r} of a {event.type} event is {event.data[field]!r:.60}"
            )
    if event.type == "policy_set" and not _rules(event.data):
        raise MalformedEvent(event.model, event.seq, "its data is not an approval policy")
    return event
