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
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
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


def _reset_after_fork() -> None:
    global _lock, _last, _pending, _failed, _hooked_pid
    _lock, _last, _pending, _failed, _hooked_pid = threading.Lock(), None, {}, {}, None


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
    except Exception as exc:  # the manifest is the record: the log catches up on the next try
        _log.warning("registered event not logged yet (%s: %s); the log catches up later", type(exc).__name__, exc)
        with _lock:
            for held in (_failed.pop(key, None), _pending.pop(key, None)):
                if held is not None and held[1][0] > job[1][0]:
                    job = held
            _failed[key] = job


def flush() -> None:
    """Wait until every announcement handed over so far ran; those that failed are tried once more.

    Never raises: an announcement that still fails is left to the log's catch-up (see the module docs) and
    tried again by the next submit or flush. A no-op on the worker thread itself (an announcement reads the
    log too).
    """
    global _last
    if getattr(_inside, "active", False):
        return
    for attempt in range(2):
        with _lock:
            if attempt:
                if not _failed:
                    return
                try:
                    _requeue_failed()
                except RuntimeError:  # interpreter shutdown: no new threads; the log catches up later
                    return
            last = _last
        if last is None:
            return
        last.result()


def _hook_exit() -> None:
    """Flush at exit; in a ``multiprocessing`` child also when it ends (once per process)."""
    global _hooked_pid
    if _hooked_pid == os.getpid():
        return
    _hooked_pid = os.getpid()
    atexit.register(flush)
    mp = sys.modules.get("multiprocessing")
    if mp is not None and mp.parent_process() is not None:
        import multiprocessing.util

        multiprocessing.util.Finalize(None, flush, exitpriority=100)
