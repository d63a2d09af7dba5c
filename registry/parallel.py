"""One small thread pool per process for overlapping independent store requests (uploads, probes, reads).

Each task submitted here is a leaf (a store request, or a read built of them): none waits on another task of
this pool, so the pool cannot deadlock however busy it is. A forked child gets a fresh pool (the parent's
threads do not exist there).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _reset_after_fork() -> None:
    global _lock, _pool
    _lock = threading.Lock()
    _pool = None


os.register_at_fork(after_in_child=_reset_after_fork)


def submit(fn: Callable[..., T], *args: Any) -> Future[T]:
    """Run ``fn(*args)`` on the process's I/O pool."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="pmr-io")
        pool = _pool
    return pool.submit(fn, *args)
