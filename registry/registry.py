"""The registry: register versions, change stages and aliases, record decisions, resolve and load.

The class is put together from its operations, one room each in ``operations``; every writer checks all of
its input first, then writes through the one write path of ``operations.base``. Underneath: object keys in
``core.keys``, manifests and version numbers in ``core.versions``, the log in ``core.log``, operation keys in
``core.idempotency``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect_model_registry.registry.core import cache, retention
from prefect_model_registry.registry.core.idempotency import Claims
from prefect_model_registry.registry.operations.decisions import Decisions
from prefect_model_registry.registry.operations.edits import Edits
from prefect_model_registry.registry.operations.policies import Policies
from prefect_model_registry.registry.operations.reading import Reading
from prefect_model_registry.registry.operations.registering import Registering
from prefect_model_registry.registry.operations.stages import Stages
from prefect_model_registry.registry.store import open_store
from prefect_model_registry.registry.store.base import ObjectStore


class Registry(Registering, Reading, Edits, Stages, Decisions, Policies):
    """A model registry over an :class:`~prefect_model_registry.registry.store.ObjectStore`. No database, no server.

    Its operations live in ``operations``, one room each (registering, reading, edits, stages, decisions,
    policies); every writer goes through the one write path of ``operations.base``.
    """

    def __init__(self, store: ObjectStore, *, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.store = store
        self._claims = Claims(store)
        root = Path(cache_dir) if cache_dir is not None else cache.default_dir()
        self.cache = cache.ArtifactCache(root) if root is not None else None

    @classmethod
    def open(
        cls,
        location: str | os.PathLike[str] | None = None,
        *,
        create: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> Registry:
        """Open (and check) the registry at ``location``: ``s3://bucket/prefix`` or a directory.

        Args:
            location: the registry; default ``PMR_REGISTRY_URI``, else ``.pmr/registry``.
            create: create a local registry's directory on the first write.
            cache_dir: where verified artifacts are cached for :meth:`load` (default: see
                :mod:`prefect_model_registry.registry.core.cache`; ``PMR_CACHE_DIR=off`` turns the cache off).

        Raises:
            BucketNotFound, StoreAccessDenied, StoreUnavailable: the store cannot be used.

        """
        store = open_store(location, create=create)
        store.check()
        return cls(store, cache_dir=cache_dir)

    def gc(self, name: str, **kwargs: Any) -> Any:
        """Remove old versions of ``name`` that no rule keeps: see ``gc``."""
        return retention.gc(self, name, **kwargs)

    def delete_model(self, name: str, **kwargs: Any) -> Any:
        """Delete every version of ``name`` (with ``confirm=name``): see ``delete_model``."""
        return retention.delete_model(self, name, **kwargs)
