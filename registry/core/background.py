"""Best-effort cache writes (snapshots, the ``latest`` hint) off the critical path of the operation that caused them.

One worker thread per process runs them in order, so two refreshes of the same object never race each other
in one process (a compare-and-swap write needs the ETag the previous one returned). A refresh submitted under a
key waits a moment (:data:`GATHER_S`) and writes what is newest when it runs; while it waits, more refreshes under that
key are not queued: a burst of writes to one model costs one snapshot write, not one per event.

An operation returns as soon as its record (manifest, event) has landed: these writes only spare readers
elsewhere a few requests, and each is checked before use, so one that is late, lost with a crash, or failed
changes no outcome.

:func:`flush` waits for everything submitted so far (``verify`` calls it, so do tests that compare the store
byte for byte). An exiting process flushes too, among threading's exit callbacks (``announcer.run_at_exit``: by
``atexit`` time the thread pools take no work, and a write then would fail), for at most :data:`EXIT_WAIT_S`, and
says so on stderr when it could not; a forked child starts with none.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from prefect_model_registry.registry.core import announcer
from prefect_model_registry.registry.core.parallel import Pool

#: How long a keyed refresh waits for more writes under its key before it runs (one write per burst).
GATHER_S = 0.02
#: How long an exiting process waits for its cache writes (seconds).
EXIT_WAIT_S = 10.0

_log = logging.getLogger(__name__)

_worker = Pool(1, "pmr-cache")  # one worker: refreshes run in the order they were submitted
_lock = threading.Lock()
_last: Future[Any] | None = None
_queued: set[Hashable] = set()  # keys with a refresh waiting to run
_hurry = threading.Event()  # set by flush: waiting refreshes run at once
_exit_hooks = 0  # registered at the first submit, and again after the first write ran (see announcer)


def _reset_after_fork() -> None:
    global _lock, _last, _queued, _hurry, _exit_hooks
    _lock = threading.Lock()
    _last = None
    _queued, _hurry, _exit_hooks = set(), threading.Event(), 0


os.register_at_fork(after_in_child=_reset_after_fork)


def submit(fn: Callable[..., Any], *args: Any, key: Hashable | None = None) -> None:
    """Run ``fn(*args)`` after every write submitted before it; its exceptions are dropped (best effort).

    With ``key``, it first waits :data:`GATHER_S`, and nothing more is queued under the same key while it
    waits: ``fn`` must write what is newest when it runs.
    """
    global _last
    if _exit_hooks == 0:
        _register_exit()
    with _lock:
        if key is not None:
            if key in _queued:
                return
            _queued.add(key)
        _last = _worker.submit(_run, fn, args, key)


def _run(fn: Callable[..., Any], args: tuple[Any, ...], key: Hashable | None) -> None:
    if key is not None:
        _hurry.wait(GATHER_S)
        with _lock:
            _queued.discard(key)
    try:
        fn(*args)
    except Exception:  # a cache write never fails anything; readers check what they read
        pass
    if _exit_hooks == 1:
        _register_exit()  # after services the write may have started, so this flush runs before theirs


def _register_exit() -> None:
    global _exit_hooks
    _exit_hooks += 1
    announcer.run_at_exit(_at_exit)


def _at_exit() -> None:
    with _lock:
        busy = _last is not None and not _last.done()
    if busy and not flush(EXIT_WAIT_S):
        _log.warning("registry cache writes still running after %gs at exit; readers use the log", EXIT_WAIT_S)


def flush(timeout: float | None = None) -> bool:
    """Wait until every write submitted so far has finished (one worker runs them in order, without delays).

    Pending ``registered`` events (``announcer``) are logged first: their snapshot refreshes too.

    Returns:
        False if ``timeout`` (seconds) passed first.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    if not announcer.flush(timeout):
        return False
    with _lock:
        last = _last
    if last is None:
        return True
    _hurry.set()
    try:
        last.result(None if deadline is None else max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        return False
    finally:
        _hurry.clear()
    return True
