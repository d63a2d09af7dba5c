"""Logging ``registered`` events off the critical path of a registration (the manifest is the record).

A registration's create-only manifest write owns its number and holds everything the ``registered`` event
records (who, what, the manifest's hash is computed from it). So :meth:`Registry.register` returns once the
manifest has landed and hands the event to this module: one worker thread per process appends it, in order,
while the caller goes on (sequential registrations overlap one's event with the next one's manifest).

The log catches up whoever writes it: ``announce`` logs every version up to the one it
is given that the log still lacks, lowest first, reading their manifests. So a registrant that died before its
event landed (or whose event write failed) leaves a gap in the log that the next registration of that model,
in any process, fills; ``pmr verify`` reports it meanwhile (``unannounced``) and ``pmr verify --repair`` fills
it too.

In this process nothing can see the log without the events it handed here: :func:`flush` runs before every
read or append of a log (:class:`prefect_model_registry.registry.core.log.ModelLog`), at interpreter exit, and when a
``multiprocessing`` child ends (it leaves with ``os._exit``, which skips ``atexit``). A forked child starts
with nothing pending.

At exit the flush runs among threading's own exit callbacks, not ``atexit``'s: those run after
``concurrent.futures`` has stopped taking work, so an announcement still running then could not read the log
(``cannot schedule new futures``) and was lost until the next registration. It waits at most
:data:`EXIT_WAIT_S` and says so on stderr (through this module's logger) when the log is not complete.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from prefect_model_registry.registry.core.parallel import Pool

_log = logging.getLogger(__name__)

_worker = Pool(1, "pmr-announce")
_lock = threading.Lock()
_last: Future[Any] | None = None
#: Per model, the newest announcement waiting to run (announcing it logs every version below it too).
_pending: dict[Hashable, tuple[Callable[..., Any], tuple[Any, ...]]] = {}
#: Announcements whose write failed: tried again by the next submit or flush.
_failed: dict[Hashable, tuple[Callable[..., Any], tuple[Any, ...]]] = {}
_inside = threading.local()
_hooked_pid: int | None = None
#: Exit callbacks registered in this process (at the first submit, and after the first announcement ran).
_exit_hooks = 0
#: How long an exiting process waits for its announcements (seconds).
EXIT_WAIT_S = 30.0


def _reset_after_fork() -> None:
    global _lock, _last, _pending, _failed, _hooked_pid, _exit_hooks
    _lock, _last, _pending, _failed, _hooked_pid, _exit_hooks = threading.Lock(), None, {}, {}, None, 0


os.register_at_fork(after_in_child=_reset_after_fork)


def submit(key: Hashable, version: int, fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` (the announcement of ``version``) on the worker; a newer one under ``key`` supersedes it.

    ``fn`` must log everything below ``version`` too (see ``announce``): while an
    announcement waits, a newer one under the same key replaces it instead of queueing behind it.
    """
    global _last
    _hook_exit()
    with _lock:
        _requeue_failed()
        _queue(key, (fn, (version, *args)))
        _last = _worker.submit(_run, key)


def _requeue_failed() -> None:
    """Queue the failed announcements again (hold ``_lock``); one that cannot be submitted stays failed."""
    global _last
    for key in list(_failed):
        _last = _worker.submit(_run, key)
        _queue(key, _failed.pop(key))


def _queue(key: Hashable, job: tuple[Callable[..., Any], tuple[Any, ...]]) -> None:
    held = _pending.get(key)
    if held is None or job[1][0] >= held[1][0]:
        _pending[key] = job


def _run(key: Hashable) -> None:
    _inside.active = True
    with _lock:
        job = _pending.pop(key, None)
    if job is None:
        return  # a newer announcement of this model ran already (it covered this one)
    fn, (_, *args) = job
    try:
        fn(*args)
        if _exit_hooks == 1:
            # An announcement may start services with exit callbacks of their own (a Prefect event sink's
            # worker): registered again after them, this flush runs first at exit, while they still take work.
            _register_exit()
    except Exception as exc:  # the manifest is the record: the log catches up on the next try
        _log.warning("registered event not logged yet (%s: %s); the log catches up later", type(exc).__name__, exc)
        with _lock:
            for held in (_failed.pop(key, None), _pending.pop(key, None)):
                if held is not None and held[1][0] > job[1][0]:
                    job = held
            _failed[key] = job


def flush(timeout: float | None = None) -> bool:
    """Wait until every announcement handed over so far ran; those that failed are tried once more.

    Never raises: an announcement that still fails is left to the log's catch-up (see the module docs) and
    tried again by the next submit or flush. A no-op on the worker thread itself (an announcement reads the
    log too).

    Returns:
        False if ``timeout`` (seconds) passed first.
    """
    global _last
    if getattr(_inside, "active", False):
        return True
    deadline = None if timeout is None else time.monotonic() + timeout
    for attempt in range(2):
        with _lock:
            if attempt:
                if not _failed:
                    return True
                try:
                    _requeue_failed()
                except RuntimeError:  # interpreter shutdown: no new threads; the log catches up later
                    return True
            last = _last
        if last is None:
            return True
        try:
            last.result(None if deadline is None else max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            return False
    return True


def _hook_exit() -> None:
    """Flush at exit; in a ``multiprocessing`` child also when it ends (once per process)."""
    global _hooked_pid
    if _hooked_pid == os.getpid():
        return
    _hooked_pid = os.getpid()
    _register_exit()
    mp = sys.modules.get("multiprocessing")
    if mp is not None and mp.parent_process() is not None:
        import multiprocessing.util

        multiprocessing.util.Finalize(None, flush, exitpriority=100)


def _register_exit() -> None:
    global _exit_hooks
    _exit_hooks += 1
    run_at_exit(_at_exit)


def run_at_exit(fn: Callable[[], None]) -> None:
    """Run ``fn`` among threading's exit callbacks: newest first, all before ``concurrent.futures`` stops.

    ``atexit`` callbacks run after that, when a background write could no longer use a thread pool; a Python
    without the hook (or a process already exiting) falls back to ``atexit``.
    """
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is None:
            raise RuntimeError("no threading exit hook")
        register(fn)
    except RuntimeError:
        atexit.register(fn)


def _at_exit() -> None:
    if _pending_count() and not flush(EXIT_WAIT_S):
        _log.warning(
            "%d registered event(s) still not logged after %gs at exit; the log catches up (the model's next "
            "registration, or pmr verify --repair)",
            _pending_count(),
            EXIT_WAIT_S,
        )


def _pending_count() -> int:
    """Announcements not run yet, or failed (a running one counts once its future is not done)."""
    with _lock:
        running = _last is not None and not _last.done()
        return max(len(_pending) + len(_failed), int(running))
