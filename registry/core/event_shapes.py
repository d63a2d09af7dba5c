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
from prefect_model_registry.registry.events import ANY_FIELDS, spec_of
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


#: The check behind each field kind named in ``events`` (``?`` adds ``None``).
KINDS: dict[str, Check] = {
    "int": _int,
    "str": _str,
    "bool": _bool,
    "stage": _stage,
    "ints": _list_of(_int),
    "strs": _list_of(_str),
    "tags": _tags,
    "rules": _rules,
}


def _check_of(kind: str) -> Check:
    return _or_none(KINDS[kind[:-1]]) if kind.endswith("?") else KINDS[kind]


def check_shape(event: Event) -> Event:
    """Return ``event`` if it holds what its type needs (``events.SPECS``); otherwise raise ``MalformedEvent``."""
    spec = spec_of(event.type)
    fields = {**ANY_FIELDS, **(spec.fields if spec else {})}
    if spec is not None and spec.names_version and not _int(event.version):
        raise MalformedEvent(event.model, event.seq, f"a {event.type} event names no version")
    for name, field in fields.items():
        if name not in event.data:
            if field.required:
                raise MalformedEvent(event.model, event.seq, f"its {event.type} data lacks {name!r}")
            continue
        if not _check_of(field.kind)(event.data[name]):
            raise MalformedEvent(
                event.model, event.seq, f"{name!r} of a {event.type} event is {event.data[name]!r:.60}"
            )
    if spec is not None and spec.whole_data and not _check_of(spec.whole_data)(event.data):
        raise MalformedEvent(event.model, event.seq, "its data is not an approval policy")
    return event
