"""One small thread pool per process for overlapping independent store requests (uploads, probes, reads).

Each task submitted here is a leaf (a store request, or a read built of them): none waits on another task of
this pool, so the pool cannot deadlock however busy it is. A forked child gets a fresh pool (the parent's
threads do not exist there).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_pools: weakref.WeakSet[Pool] = weakref.WeakSet()


class Pool:
    """A thread pool made on first use, and made again in a forked child (the parent's threads are not there)."""

    def __init__(self, workers: int, prefix: str) -> None:
        self._workers, self._prefix = workers, prefix
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        _pools.add(self)

    def _after_fork(self) -> None:
        self._lock, self._executor = threading.Lock(), None

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn(*args)`` on this pool."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix=self._prefix)
            executor = self._executor
        return executor.submit(fn, *args)


def _reset_after_fork() -> None:
    for pool in list(_pools):
        pool._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)

_io = Pool(16, "pmr-io")


def submit(fn: Callable[..., T], *args: Any) -> Future[T]:
    """Run ``fn(*args)`` on the process's I/O pool."""
    return _io.submit(fn, *args)
