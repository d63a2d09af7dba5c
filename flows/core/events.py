"""The Prefect side of the registry's event hooks: every audit event becomes a ``model.*`` Prefect event.

Registered as the ``pmr.event_sinks`` entry point, so it runs after each event that lands, whoever appended it: a
flow, ``pmr promote``/``rollback``/``alias``, or a direct :class:`registry.Registry` call. Automations and
deployment triggers (``model.rolled-back`` in ``deployments/prefect.yaml``) therefore fire whatever made the
change, and a flow does not emit its lifecycle events itself (they would arrive twice).

Outside a Prefect run, events are sent only when a Prefect API is configured (``PREFECT_API_URL`` in the
environment or the active profile). With none, the sink returns without importing Prefect: ``pmr`` stays fast,
silent and never starts an ephemeral server.

A process that emitted events waits at its exit until Prefect's events worker has sent them (:func:`flush`, at
most :data:`EXIT_WAIT_S`), before that worker's own exit drain: a command that ended while its event was still
queued (the worker still connecting to a slow API) left Prefect's ``Still processing items: 1 items remaining...``
on stderr. When they are not sent in time it says so in one line instead.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import tomllib
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect_model_registry.registry.core.announcer import run_at_exit
from prefect_model_registry.registry.events import EventType, spec_of
from prefect_model_registry.registry.models import Event

if TYPE_CHECKING:
    from prefect.events.worker import EventsWorker

#: How long an exiting process waits for Prefect to send the events it emitted (seconds).
EXIT_WAIT_S = 10.0

_log = logging.getLogger(__name__)
#: Prefect's events workers this process emitted through (one per API, usually one).
_workers: weakref.WeakSet[EventsWorker] = weakref.WeakSet()
_hooked_pid: int | None = None


def prefect_events(event: Event) -> list[tuple[str, int | None, dict[str, Any]]]:
    """The Prefect events (name, version, payload) one registry event stands for.

    A promotion to production that archived the old version is ``model.promoted`` plus one ``model.archived``
    per archived version, plus ``model.alias-set`` per alias moved with it; a break-glass promotion or rollback is
    also ``model.break-glass``; a failed gate is ``model.gate-failed``; a protected alias removed from a rejected
    or gate-blocked version is ``model.alias-removed``.
    """
    base: dict[str, Any] = {"actor": event.actor, "reason": event.reason, "seq": event.seq, **event.data}
    if event.run_id:
        base["run_id"] = event.run_id
    out: list[tuple[str, int | None, dict[str, Any]]] = []
    if event.type in (EventType.STAGE_CHANGED, EventType.BREAK_GLASS):
        to = event.data.get("to")
        out.append(("model.archived" if to == "archived" else "model.promoted", event.version, {**base, "stage": to}))
        for old in event.data.get("archived", []):
            out.append(("model.archived", old, {**base, "replaced_by": event.version}))
        if event.type == EventType.BREAK_GLASS:
            out.append(("model.break-glass", event.version, base))
        for alias in event.data.get("aliases", []):  # aliases moved in the promotion's own event
            out.append(("model.alias-set", event.version, {**base, "alias": alias}))
    elif event.type == EventType.VALIDATED:
        if not event.data.get("passed", False):
            out.append(("model.gate-failed", event.version, base))
    elif (spec := spec_of(event.type)) is not None and spec.prefect_event:
        out.append((spec.prefect_event, event.version, base))
    if event.type == EventType.ROLLED_BACK and event.data.get("break_glass"):
        out.append(("model.break-glass", event.version, base))
    for alias in event.data.get("removed_aliases", []):  # a protected alias taken off a blocked version
        out.append(("model.alias-removed", event.version, {**base, "alias": alias}))
    if event.type == EventType.REGISTERED and event.data.get("failed_gates"):
        out.append(("model.gate-failed", event.version, {**base, "gate": ", ".join(event.data["failed_gates"])}))
    return out


def _profile_api_url() -> str | None:
    """``PREFECT_API_URL`` of the active profile, read without importing Prefect."""
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    value = profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return value if isinstance(value, str) and value else None


def in_prefect_run() -> bool:
    """Whether this code runs inside a Prefect flow or task run."""
    if "prefect" not in sys.modules:  # a flow or task run always has Prefect imported
        return False
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def api_configured() -> bool:
    """Whether a Prefect API is configured (environment or profile) for events to go to."""
    if os.environ.get("PREFECT_API_URL") or _profile_api_url():
        return True
    if "prefect" in sys.modules:  # e.g. a test harness or a settings context set it in-process
        from prefect.settings import PREFECT_API_URL

        return bool(PREFECT_API_URL.value())
    return False


def send(event: Event) -> None:
    """Emit the Prefect events for ``event`` when in a Prefect run or a Prefect API is configured."""
    if not (in_prefect_run() or api_configured()):
        return
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    emitted = False
    for name, version, payload in prefect_events(event):
        resource = {
            "prefect.resource.id": f"pmr.model.{event.model}",
            "prefect.resource.name": event.model,
            "pmr.model": event.model,
        }
        if version is not None:
            resource["pmr.version"] = str(version)
        payload = {"model": event.model, "version": version, **payload}
        emitted = emit_event(event=name, resource=resource, payload=payload) is not None or emitted
    if emitted:
        _workers.add(EventsWorker.instance())  # the worker emit_event used (same settings, same instance)
        _hook_exit()


def flush(timeout: float) -> bool:
    """Wait until Prefect's events workers have sent every event this process emitted; False after ``timeout``."""
    pending = [w for w in list(_workers) if not getattr(w, "_stopped", False)]
    if not pending:
        return True

    # wait_until_empty has no timeout: it waits in a daemon thread, which the interpreter does not wait for.
    def wait() -> None:
        for worker in pending:
            worker.wait_until_empty()

    waiter = threading.Thread(target=wait, daemon=True, name="pmr-events-flush")
    waiter.start()
    waiter.join(timeout)
    return not waiter.is_alive()


def _hook_exit() -> None:
    """Flush at exit, before Prefect's own exit drain (registered after its worker started: newest runs first)."""
    global _hooked_pid
    if _hooked_pid == os.getpid():
        return
    _hooked_pid = os.getpid()
    run_at_exit(_at_exit)


def _at_exit() -> None:
    if flush(EXIT_WAIT_S):
        return
    _log.warning(
        "Prefect events not all sent within %gs at exit (the Prefect API is slow or unreachable); the registry's "
        "audit log has every change",
        EXIT_WAIT_S,
    )
    logging.getLogger("EventsWorker").setLevel(logging.ERROR)  # said once here, not again by Prefect's drain
