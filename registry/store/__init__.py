"""Object stores: one small interface (``base``), an S3 backend (``s3``) and a local-directory backend."""

from __future__ import annotations

import os
from pathlib import Path

from prefect_model_registry.registry.errors import InvalidURI
from prefect_model_registry.registry.store.base import ObjectStore, StoredObject, default_location


def open_store(location: str | os.PathLike[str] | None = None, *, create: bool = True) -> ObjectStore:
    """Open the store at ``location`` (``s3://bucket/prefix``, ``file://path`` or a plain path).

    Args:
        location: where the registry lives; ``None`` means :func:`default_location`.
        create: for a local directory, create it if missing (S3 buckets are never created).

    """
    loc = os.fspath(location) if location is not None else default_location()
    if loc.startswith("s3://"):
        from prefect_model_registry.registry.store.s3 import S3Store

        bucket, _, prefix = loc[len("s3://") :].partition("/")
        if not bucket:
            raise InvalidURI(f"no bucket in registry location {loc!r}")
        return S3Store(bucket, prefix.strip("/"))
    if "://" in loc and not loc.startswith("file://"):
        raise InvalidURI(f"unsupported registry location {loc!r}: use s3://bucket/prefix or a local path")
    from prefect_model_registry.registry.store.local import LocalStore

    return LocalStore(Path(loc.removeprefix("file://")), create=create)


__all__ = ["ObjectStore", "StoredObject", "default_location", "open_store"]
