"""The object-store interface the registry is written against.

Two guarantees carry the whole registry: ``put(create_only=True)`` succeeds for exactly one of several
racing writers, and ``put(if_match=etag)`` succeeds only while the object still has that ETag. Both raise
:class:`~prefect_model_registry.registry.errors.PreconditionFailed` for the losers.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from prefect_model_registry.registry.errors import IntegrityError, InvalidName, ObjectNotFound
from prefect_model_registry.registry.settings import REGISTRY_URI, VARIABLES, settings

# Keys are relative, slash-separated, with no empty, "." or ".." segment: safe both as S3 keys and as paths.
_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9._@=+-]+$")


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe object key, else raise :class:`InvalidName`."""
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") or not _KEY_SEGMENT.match(p) for p in parts):
        raise InvalidName(f"unsafe object key {key!r}")
    return key


#: Told how many more bytes a transfer moved (boto3's ``Callback`` convention).
Progress = Callable[[int], None]
#: The size of one read or write of a streamed transfer: memory per stream never holds more.
CHUNK = 1024 * 1024


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

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when it is missing."""
        try:
            return len(self.get(key).data)
        except ObjectNotFound:
            return None

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        sha256: str | None = None,
        unchanged: Callable[[], bool] | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Write the bytes of the file ``path`` as ``key`` (a plain write; for content-addressed blobs).

        Memory stays bounded whatever the file's size (stores move it in chunks or parts). Nothing is visible
        under ``key`` until the whole file has landed. The base version reads the file whole: stores override it.

        Args:
            key: object key.
            path: the file.
            sha256: the hash the bytes must have: the bytes sent are hashed on the way and nothing is published
                unless they match (a file that changed after it was first hashed is refused).
            unchanged: asked just before publishing whether the file is still the one first hashed (its size,
                inode, modification and change times): nothing is published when it says no. A second hash pass
                costs as much as the copy; this costs one ``stat``.
            progress: told of each chunk moved.

        Raises:
            IntegrityError: the bytes sent do not have ``sha256``; nothing is written under ``key``.

        """
        data = path.read_bytes()
        check_unchanged(path, data, sha256, unchanged)
        self.put(key, data)
        if progress is not None:
            progress(len(data))

    def get_file(self, key: str, path: Path, *, progress: Progress | None = None) -> None:
        """Write the object's bytes into the file ``path``, which the caller created empty (never a target).

        Raises:
            ObjectNotFound: no object under ``key``.

        """
        with open(path, "wb") as out:
            for chunk in self.read_chunks(key):
                out.write(chunk)
                if progress is not None:
                    progress(len(chunk))

    def read_chunks(self, key: str) -> Iterator[bytes]:
        """The object's bytes in chunks of at most :data:`CHUNK` (hashing without holding it whole).

        Raises:
            ObjectNotFound: no object under ``key``.

        """
        data = self.get(key).data
        for start in range(0, len(data), CHUNK):
            yield data[start : start + CHUNK]

    def open_read(self, key: str) -> BinaryIO:
        """A seekable reader of the object (a zip directory is read without fetching the whole object).

        Raises:
            ObjectNotFound: no object under ``key``.

        """
        return io.BytesIO(self.get(key).data)

    def copy_within(self, source: ObjectStore, source_key: str, key: str, *, progress: Progress | None = None) -> bool:
        """Copy ``source_key`` of ``source`` to ``key`` without the bytes leaving the server, when possible.

        Returns:
            False when this store cannot (another endpoint or backend): the caller streams the bytes instead.

        """
        return False

    def unfinished_uploads(self) -> builtins.list[tuple[str, float]]:
        """Multipart uploads begun and never completed, by name, with their age in seconds (none by default)."""
        return []

    def abort_upload(self, name: str) -> None:
        """Abort one unfinished upload named by :meth:`unfinished_uploads` (none exist by default)."""
        return

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


def check_unchanged(path: Path, data: bytes | None, sha256: str | None, unchanged: Callable[[], bool] | None) -> None:
    """Refuse to publish a file that changed after it was first read (see :meth:`ObjectStore.put_file`).

    Raises:
        IntegrityError: ``data`` does not hash to ``sha256``, or ``unchanged`` says the file changed.

    """
    if sha256 is not None and data is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise IntegrityError(f"{path} changed while it was being stored (sha256 differs from its first read)")
    if unchanged is not None and not unchanged():
        raise IntegrityError(f"{path} changed while it was being stored (it is not the file first hashed)")


def copy_file(source: BinaryIO, out: BinaryIO, progress: Progress | None = None, digest: Any = None) -> int:
    """Copy ``source`` to ``out`` in :data:`CHUNK` pieces, feeding ``digest`` (a hashlib object) on the way.

    Returns:
        The number of bytes copied.

    """
    total = 0
    while piece := source.read(CHUNK):
        out.write(piece)
        if digest is not None:
            digest.update(piece)
        total += len(piece)
        if progress is not None:
            progress(len(piece))
    return total


DEFAULT_LOCATION: str = VARIABLES[REGISTRY_URI].default  # .pmr/registry


def default_location() -> str:
    """The registry location from ``PMR_REGISTRY_URI``, else a local directory under the working directory."""
    return settings().registry_uri
