"""The object-store interface the registry is written against.

Two guarantees carry the whole registry: ``put(create_only=True)`` succeeds for exactly one of several
racing writers, and ``put(if_match=etag)`` succeeds only while the object still has that ETag. Both raise
:class:`~prefect_model_registry.registry.errors.PreconditionFailed` for the losers.
"""

from __future__ import annotations

import builtins
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from prefect_model_registry.registry.errors import InvalidName, ObjectNotFound
from prefect_model_registry.registry.settings import REGISTRY_URI, VARIABLES, settings

# Keys are relative, slash-separated, with no empty, "." or ".." segment: safe both as S3 keys and as paths.
_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9._@=+-]+$")


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe object key, else raise :class:`InvalidName`."""
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") or not _KEY_SEGMENT.match(p) for p in parts):
        raise InvalidName(f"unsafe object key {key!r}")
    return key


@dataclass(frozen=True)
class StoredObject:
    """An object's bytes with the ETag to use for a later compare-and-swap."""

    data: bytes
    etag: str


class ObjectStore(ABC):
    """A flat key/value store of immutable-or-CAS objects."""

    #: Human-readable location, e.g. ``s3://bucket/prefix`` or a directory path.
    uri: str

    @abstractmethod
    def get(self, key: str) -> StoredObject:
        """Read an object.

        Raises:
            ObjectNotFound: no object under ``key``.

        """

    @abstractmethod
    def put(self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None) -> str:
        """Write an object whole and return its new ETag.

        Args:
            key: object key.
            data: the full content (always one request; never a multipart upload).
            create_only: fail if the key exists.
            if_match: fail unless the object's current ETag is this one.

        Raises:
            PreconditionFailed: a condition did not hold; nothing was written.

        """

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Tell whether an object exists."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[str]:
        """Yield the keys under ``prefix`` in lexicographic order."""

    def keys_after(self, prefix: str, after: str | None, limit: int) -> builtins.list[str] | None:
        """Up to ``limit`` keys under ``prefix`` sorting after ``after`` (from the first, when None), in order.

        One request where the store lists cheaply (S3: a page of ``ListObjectsV2``); None where a listing costs
        more than looking at a few keys one by one (a directory), and the caller does that instead.
        """
        return None

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete an object (missing is fine). The registry never deletes; maintenance tools may."""

    @abstractmethod
    def check(self) -> None:
        """Fail fast with a typed error if the store cannot be used (no bucket, bad credentials, down)."""

    def modified(self, key: str) -> float | None:
        """When the object was last written (epoch seconds), or None when unknown or missing."""
        return None

    def etag(self, key: str) -> str | None:
        """The object's current ETag, or None when it is missing (stores that can read metadata alone do)."""
        try:
            return self.get(key).etag
        except ObjectNotFound:
            return None

    def temp_files(self) -> builtins.list[tuple[str, float]]:
        """Leftover temporary files of interrupted writes, with their age in seconds (none on S3)."""
        return []

    def remove_temp(self, name: str) -> None:
        """Delete one leftover temporary file named by :meth:`temp_files` (none exist by default)."""
        return

    def list_children(self, prefix: str) -> builtins.list[str]:
        """Return the distinct next path segments below ``prefix`` (like listing a directory)."""
        seen: list[str] = []
        for key in self.list(prefix):
            child = key[len(prefix) :].split("/", 1)[0]
            if not seen or seen[-1] != child:
                seen.append(child)
        return seen


DEFAULT_LOCATION: str = VARIABLES[REGISTRY_URI].default  # .pmr/registry


def default_location() -> str:
    """The registry location from ``PMR_REGISTRY_URI``, else a local directory under the working directory."""
    return settings().registry_uri
