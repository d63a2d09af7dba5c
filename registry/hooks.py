"""Listeners told about every audit event that lands, whoever wrote it (a flow, ``pmr``, a direct API call).

The registry imports nothing here: sinks register through the ``pmr.event_sinks`` entry-point group (this
package's own sends ``model.*`` events to Prefect, see ``events``) or with :func:`add_listener`; a listener that
also needs the registry the event landed in (to read it again, e.g. the flows' overview refresher) registers with
:func:`add_store_listener` and is given the store too. A listener is best effort: the event already landed, so the
operation has happened whatever a listener does; its errors are logged and swallowed. Listeners run on the writer's
path: one with slow work to do hands it to a thread of its own and returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING

from prefect_model_registry.registry.models import Event

if TYPE_CHECKING:  # annotations only: the store layer sits above this one
    from prefect_model_registry.registry.store.base import ObjectStore

log = logging.getLogger(__name__)

Listener = Callable[[Event], None]
#: Called with the event and the store of the registry it landed in.
StoreListener = Callable[[Event, "ObjectStore"], None]

_listeners: list[Listener] = []
_store_listeners: list[StoreListener] = []
_loaded = False
_lock = threading.Lock()


def add_listener(listener: Listener) -> None:
    """Call ``listener(event)`` after each event this process appends."""
    with _lock:
        if listener not in _listeners:
            _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    """Stop calling ``listener``."""
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def add_store_listener(listener: StoreListener) -> None:
    """Call ``listener(event, store)`` after each event this process appends to the registry in ``store``."""
    with _lock:
        if listener not in _store_listeners:
            _store_listeners.append(listener)


def remove_store_listener(listener: StoreListener) -> None:
    """Stop calling ``listener``."""
    with _lock:
        if listener in _store_listeners:
            _store_listeners.remove(listener)


def _load_entry_points() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
    for ep in metadata.entry_points(group="pmr.event_sinks"):
        try:
            add_listener(ep.load())
        except Exception as exc:  # a broken plug-in must not break registry writes
            log.warning("event sink %s could not be loaded: %s", ep.name, exc)


def notify(event: Event, store: ObjectStore | None = None) -> None:
    """Tell every listener about ``event``, appended to the registry in ``store`` (never raises).

    The store listeners are told only when ``store`` is given.
    """
    _load_entry_points()
    for listener in list(_listeners):
        try:
            listener(event)
        except Exception as exc:
            log.warning("event listener %r failed on %s event %d: %s", listener, event.type, event.seq, exc)
    if store is None:
        return
    for store_listener in list(_store_listeners):
        try:
            store_listener(event, store)
        except Exception as exc:
            log.warning("event listener %r failed on %s event %d: %s", store_listener, event.type, event.seq, exc)


#: Decides ``(name, version, approved, reviewer, comment, stage)`` somewhere else (e.g. resumes the flow run that
#: waits for it) and returns what happened, or None when it has nothing to do with this decision.
DecisionRouter = Callable[[str, int, bool, str, str, str], "str | None"]

_routers: list[DecisionRouter] = []


def add_decision_router(router: DecisionRouter) -> None:
    """Let ``router`` take reviewers' decisions first (``pmr approve``/``reject``); the flows add one."""
    with _lock:
        if router not in _routers:
            _routers.append(router)


def route_decision(name: str, version: int, approved: bool, reviewer: str, comment: str, stage: str) -> str | None:
    """The first router's account of the decision, or None when none took it (record it in the registry)."""
    for router in list(_routers):
        outcome = router(name, version, approved, reviewer, comment, stage)
        if outcome is not None:
            return outcome
    return None
