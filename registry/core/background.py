"""Best-effort cache writes (snapshots, the ``latest`` hint) off the critical path of the operation that caused them.

One worker thread per process runs them in order, so two refreshes of the same object never race each other
in one process (a compare-and-swap write needs the ETag the previous one returned). A refresh submitted under a
key waits a moment (:data:`GATHER_S`) and writes what is newest when it runs; while it waits, more refreshes under that
key are not queued: a burst of writes to one model costs one snapshot write, not one per event.

An operation returns as soon as its record (manifest, event) has landed: these writes only spare readers
elsewhere a few requests, and each is checked before use, so one that is late, lost with a crash, or failed
changes no outcome.

:func:`flush` waits for everything submitted so far (``verify`` calls it, so do tests that compare the store
byte for byte). The worker is joined when the interpreter exits; a forked child starts with none.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any

from prefect_model_registry.registry.core import announcer
from prefect_model_registry.registry.core.parallel import Pool

#: How long a keyed refresh waits for more writes under its key before it runs (one write per burst).
GATHER_S = 0.02

_worker = Pool(1, "pmr-cache")  # one worker: refreshes run in the order they were submitted
_lock = threading.Lock()
_last: Future[Any] | None = None
_queued: set[Hashable] = set()  # keys with a refresh waiting to run
_hurry = threading.Event()  # set by flush: waiting refreshes run at once


def _reset_after_fork() -> None:
    global _lock, _last, _queued, _hurry
    _lock = threading.Lock()
    _last = None
    _queued, _hurry = set(), threading.Event()


os.register_at_fork(after_in_child=_reset_after_fork)


def submit(fn: Callable[..., Any], *args: Any, key: Hashable | None = None) -> None:
    """Run ``fn(*args)`` after every write submitted before it; its exceptions are dropped (best effort).

    With ``key``, it first waits :data:`GATHER_S`, and nothing more is queued under the same key while it
    waits: ``fn`` must write what is newest when it runs.
    """
    global _last
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


def flush() -> None:
    """Wait until every write submitted so far has finished (one worker runs them in order, without delays).

    Pending ``registered`` events (``announcer``) are logged first: their snapshot refreshes too.
    """
    announcer.flush()
    with _lock:
        last = _last
    if last is None:
        return
    _hurry.set()
    try:
        last.result()
    finally:
        _hurry.clear()
