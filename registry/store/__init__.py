"""Object stores: one small interface, an S3 backend and a local-directory backend."""

from __future__ import annotations

from prefect_model_registry.registry.store.base import ObjectStore, StoredObject, open_store

__all__ = ["ObjectStore", "StoredObject", "open_store"]
