"""Best-effort cache writes (snapshots, the ``latest`` hint) off the critical path of the operation that caused them.

One worker thread per process runs them in order, so two refreshes of the same object never race each other
in one process (a compare-and-swap write needs the ETag the previous one returned). An operation returns as soon
as its record (manifest, event) has landed: these writes only spare readers elsewhere a few requests, and each
is checked before use, so one that is late, lost with a crash, or failed changes no outcome.

:func:`flush` waits for everything submitted so far (``verify`` calls it, so do tests that compare the store
byte for byte). The worker is joined when the interpreter exits; a forked child starts with none.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_last: Future[Any] | None = None


def _reset_after_fork() -> None:
    global _lock, _pool, _last
    _lock = threading.Lock()
    _pool = _last = None


os.register_at_fork(after_in_child=_reset_after_fork)


def submit(fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` after every write submitted before it; its exceptions are dropped (best effort)."""
    global _pool, _last
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pmr-cache")
        _last = _pool.submit(_quietly, fn, *args)


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        pass


def flush() -> None:
    """Wait until every write submitted so far has finished (one worker runs them in order)."""
    with _lock:
        last = _last
    if last is not None:
        last.result()
