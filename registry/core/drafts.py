"""Events on their way in and out of a model's log: drafts, their size limit, parsing and replay.

A :class:`Draft` is an event before the log gives it its place (``seq``, time, the previous event's hash);
:func:`check_event_size` refuses one that would be too large before anything is written; :func:`parse_event`
reads stored bytes back and checks their place in the chain and their shape; :func:`replay` applies one to a
state, reporting a field replay cannot use as the event's damage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from prefect_model_registry.registry.core.checks import check_size
from prefect_model_registry.registry.core.event_shapes import check_shape
from prefect_model_registry.registry.core.replay import apply_event
from prefect_model_registry.registry.errors import IntegrityError, MalformedEvent
from prefect_model_registry.registry.models import GENESIS, Event, ModelState, utcnow
from prefect_model_registry.registry.settings import MAX_EVENT_BYTES


@dataclass(frozen=True)
class Draft:
    """An event before it gets its place in the log."""

    type: str
    version: int | None
    actor: str
    reason: str = ""
    run_id: str | None = None
    data: dict[str, Any] | None = None
    #: When it happened, if earlier than now (an imported history); never before the previous event.
    at: datetime | None = None
    #: The operation key the event carries when it is not the appending call's (a registration logged by
    #: whichever process catches the log up carries its registrant's key).
    op_key: str | None = None


def check_event_size(name: str, draft: Draft, op_key: str | None = None) -> None:
    """Refuse a draft whose event would exceed ``PMR_MAX_EVENT_BYTES`` (default 256 KiB), before anything is written.

    The size is that of the stored event with the widest values its place could give it (sequence number, time).
    """
    event = Event(
        seq=10**12 - 1,
        type=draft.type,
        model=name,
        version=draft.version,
        actor=draft.actor,
        at=utcnow(),
        reason=draft.reason,
        run_id=draft.run_id,
        data=draft.data or {},
        prev_hash=GENESIS,
        op_key=draft.op_key if draft.op_key is not None else op_key,
    )
    check_size(f"the {draft.type} event of {name}", len(event.to_bytes()), MAX_EVENT_BYTES)


def current_snapshot(raw: bytes) -> bool:
    """Whether snapshot bytes come from a release that tracks everything replay does.

    That is gate reports, deletions, every version ever in production and the approval records (the first production
    version, who approved what under which policy) and the
    timeline of stages and aliases: an older snapshot is replayed instead.
    """
    return (
        b'"reports"' in raw
        and b'"deleted"' in raw
        and b'"ever_in_production"' in raw
        and b'"first_production"' in raw
        and b'"approved_by"' in raw
        and b'"timeline"' in raw
    )


def parse_event(name: str, seq: int, raw: bytes, prev_hash: str) -> Event:
    """Parse stored event bytes and check that they belong at ``seq`` after ``prev_hash``.

    Raises:
        IntegrityError: unparsable, out of place, or the chain is broken.
        MalformedEvent: chained correctly, but lacking a field its kind needs or holding a mistyped one.

    """
    if not raw:  # no event is empty: this is a PUT whose body never came (a server that did not refuse it)
        raise IntegrityError(
            f"event {seq} of {name} is empty, a write that never completed; `pmr verify --repair --apply` removes it"
        )
    try:
        event = Event.model_validate_json(raw)
    except ValidationError as exc:
        raise IntegrityError(f"event {seq} of {name} is corrupt: {exc.errors()[0]['msg']}") from None
    except ValueError:
        raise IntegrityError(f"event {seq} of {name} is corrupt") from None
    if event.seq != seq or event.model != name:
        raise IntegrityError(f"event {seq} of {name} claims to be event {event.seq} of {event.model}")
    if event.prev_hash != prev_hash:
        raise IntegrityError(f"hash chain of {name} broken at event {seq}: an earlier event was altered")
    return check_shape(event)


def replay(state: ModelState, event: Event, digest: str) -> ModelState:
    """``apply_event``, with a field replay cannot use reported as the event's damage."""
    try:
        return apply_event(state, event, digest)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:  # a shape no check foresaw
        raise MalformedEvent(event.model, event.seq, f"replay failed: {type(exc).__name__}: {exc}") from None
