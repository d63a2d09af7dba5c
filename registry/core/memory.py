"""What a process remembers per store object (one per ``Registry``): a few small maps, each behind its own lock.

The log's checked state, the highest version seen taken and the parsed listing index live here. Entries are
dropped with the store object; a forked child gets fresh locks (a thread of the parent may have held one).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from prefect_model_registry.registry.store.base import ObjectStore

V = TypeVar("V")

_all: weakref.WeakSet[ProcessMemory[Any]] = weakref.WeakSet()  # every kind, whatever it holds


class ProcessMemory(Generic[V]):
    """One kind of memory: a value per store object, made by ``make`` on first use."""

    def __init__(self, make: Callable[[], V]) -> None:
        self._make = make
        self._values: weakref.WeakKeyDictionary[ObjectStore, V] = weakref.WeakKeyDictionary()
        self.lock = threading.Lock()
        _all.add(self)

    def of(self, store: ObjectStore) -> V:
        """The value for ``store`` (made on first use). Hold :attr:`lock` while reading or changing it."""
        with self.lock:
            found = self._values.get(store)
            if found is None:
                found = self._values[store] = self._make()
            return found


def _fresh_locks() -> None:
    for memory in list(_all):
        memory.lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_locks)
