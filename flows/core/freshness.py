"""Keeps the ``registry-overview`` artifact fresh: refreshed in the background after each registry event.

The flows publish the overview at the end of their runs, but a change made elsewhere (``pmr rollback`` from a
terminal, a direct :class:`~prefect_model_registry.registry.Registry` call) used to leave it showing the old
production version until the next run. :data:`REFRESHER` is a registry store listener (``registry.hooks``),
registered when ``prefect_model_registry.flows`` is imported (which the ``pmr`` script and the registry's
``pmr.event_sinks`` entry point both do). After an event lands in a process with a Prefect API (``PREFECT_API_URL``
in the environment, the active profile or Prefect's settings, or inside a flow or task run) it:

- notes the registry and returns: the writer never waits for Prefect, and never fails because of it;
- republishes the overview on a thread of its own, at most once every :data:`INTERVAL_S` seconds: events
  arriving meanwhile are folded into the next refresh (one per registry);
- as the process exits, waits at most :data:`EXIT_WAIT_S` seconds for a refresh still due or running (so a
  ``pmr rollback`` refreshes the artifact before it returns to the shell, and never hangs on an unreachable API).

A refresh that fails is logged once at warning level (later ones, and any as the process exits, at debug): the
artifact is a courtesy. With no
Prefect API configured the listener returns at once and Prefect is never imported.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prefect_model_registry.flows.core import events
from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.core.announcer import run_at_exit
from prefect_model_registry.registry.models import Event

if TYPE_CHECKING:
    from prefect_model_registry.registry.store.base import ObjectStore

log = logging.getLogger(__name__)

#: The shortest time between two refreshes of the overview (seconds).
INTERVAL_S = 5.0
#: How long a process that is exiting waits for a refresh still due or running (seconds).
EXIT_WAIT_S = 5.0


def _publish(reg: Registry) -> None:
    from prefect_model_registry.flows.core import publish

    publish.overview(reg, skip_unchanged=True)


def _settings_context() -> Any:
    """Prefect's settings in effect for the writer, or None when Prefect is not imported.

    A test harness or ``temporary_settings`` sets them per context, which a new thread does not see; without
    Prefect imported the environment and the profile decide, in any thread.
    """
    if "prefect" not in sys.modules:
        return None
    from prefect.context import SettingsContext

    return SettingsContext.get()


class OverviewRefresher:
    """A store listener republishing the overview of each registry written to, coalesced, off the writer's path.

    Args:
        interval_s: the shortest time between two refreshes.
        publish: publishes one registry's overview (default: :func:`publish.overview`, skipped when unchanged).
        wanted: whether this process has a Prefect API to publish to (default: configured or in a run).
    """

    def __init__(
        self,
        interval_s: float = INTERVAL_S,
        publish: Callable[[Registry], object] = _publish,
        wanted: Callable[[], bool] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self._publish = publish
        self._wanted = wanted or (lambda: events.in_prefect_run() or events.api_configured())
        self._cond = threading.Condition()
        self._pending: dict[str, ObjectStore] = {}
        self._settings: Any = None
        self._thread: threading.Thread | None = None
        self._busy = False
        self._hurry = False
        self._last = float("-inf")
        self._warned = False
        self._exit_hooks = 0
        self._exiting = False
        #: Refreshes done (each registry counts), for tests and diagnostics.
        self.refreshes = 0

    def __call__(self, event: Event, store: ObjectStore) -> None:
        """Note that ``event`` landed in ``store``'s registry; a refresh follows on the refresher's thread."""
        if not self._wanted():
            return
        context = _settings_context()
        with self._cond:
            self._pending[store.uri] = store
            if context is not None:
                self._settings = context
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="pmr-overview-refresh", daemon=True)
                self._thread.start()
                self._wait_at_exit()
            self._cond.notify_all()

    def flush(self, timeout: float = EXIT_WAIT_S) -> bool:
        """Refresh now what is due (no waiting out the interval); wait at most ``timeout`` s. True when done."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._hurry = True
            self._cond.notify_all()
            try:
                while self._pending or self._busy:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._thread is None or not self._thread.is_alive():
                        break
                    self._cond.wait(left)
            finally:
                self._hurry = False
            done = not (self._pending or self._busy)
        if not done:
            log.debug("registry-overview refresh still running after %.1fs; not waiting for it", timeout)
        return done

    def _wait_at_exit(self) -> None:
        """Wait for the refresh at the process's exit, before Prefect's services stop.

        Python's ``atexit`` handlers run too late: by then no thread may start and Prefect's events worker (the
        API client emits ``prefect.artifact.created``) has drained. Threading's own exit callbacks run first, the
        newest first, as Prefect's services register theirs: registered when the thread starts and again after the
        first refresh (which may have started a service), the wait comes before those stop.
        """
        if self._exit_hooks >= 2:
            return
        self._exit_hooks += 1
        run_at_exit(self._at_exit)

    def _at_exit(self) -> None:
        self._exiting = True  # a failure now is logged at debug: stderr may be closed, and nobody can act on it
        self.flush(EXIT_WAIT_S)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._pending:
                        wait = self._last + self.interval_s - time.monotonic()
                        if wait <= 0 or self._hurry:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                batch, self._pending = self._pending, {}
                self._busy, self._last = True, time.monotonic()
                context = self._settings
            try:
                for uri, store in batch.items():
                    self._refresh(uri, store, context)
            finally:
                with self._cond:
                    self._busy = False
                    self._wait_at_exit()
                    self._cond.notify_all()

    def _refresh(self, uri: str, store: ObjectStore, context: Any) -> None:
        try:
            # Made for this refresh and dropped after it: a registry kept per location would keep each store's
            # connections open in this thread and the pool's, one more set for every registry the process writes.
            reg = Registry(store)
            if context is not None:
                from prefect.context import SettingsContext

                with SettingsContext(profile=context.profile, settings=context.settings):
                    self._publish(reg)
            else:
                self._publish(reg)
            self.refreshes += 1
        except Exception as exc:  # a courtesy: never an error of the write that caused it
            level = logging.DEBUG if self._warned or self._exiting else logging.WARNING
            self._warned = True
            log.log(level, "the registry-overview artifact of %s was not refreshed: %s", uri, exc)


#: The process's refresher (registered by ``prefect_model_registry.flows``).
REFRESHER = OverviewRefresher()
