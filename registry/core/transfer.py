"""Moving artifact and dataset bytes of any size in bounded memory: sources, uploads, reuse, verified downloads.

A registration names its bytes by their SHA-256 (``blobs/sha256/<hex>``), so the hash is known before the upload
starts: a file is hashed in one pass, then sent (the store hashes what it sends again and publishes nothing
that differs, so a file changed in between is refused). Bytes in memory and small files keep the single-request
path they always had.

**Reuse without re-upload.** A blob already in the store at the right size is not sent again. Instead a small
marker ``blobs/uses/<hex>`` is written first; retention's grace period counts from the newer of the blob and
its marker (:func:`age`), so ``gc`` and ``verify --repair`` leave a blob alone while a registration that reuses it
is in flight. After the manifest is published the blob is looked at once more and sent again if a sweep took it
in the instant between (see ``registering``).

**Verified downloads.** Bytes go to a new file beside the target, are hashed there, and take the target's name
only if they match: a reader never sees a partial or unverified file at the target.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from prefect_model_registry.registry.core import keys
from prefect_model_registry.registry.core.files import publish_file, refuse_symlink
from prefect_model_registry.registry.errors import IntegrityError, InvalidMetadata, ObjectNotFound
from prefect_model_registry.registry.settings import settings
from prefect_model_registry.registry.store.base import CHUNK, ObjectStore, Progress, copy_file

#: A caller's progress callback: ``(stage, bytes done, bytes in total)``; stage is ``hashing``, ``uploading``,
#: ``downloading``, ``copying`` or ``verifying``.
ProgressCallback = Callable[[str, int, int], None]
#: Blobs up to this size are rewritten when reused (one request, and the rewrite is what refreshes their age);
#: larger ones are never sent twice (a marker refreshes their age instead).
REWRITE_MAX = 4 * 1024 * 1024


class Meter:
    """Turns a store's increments into a caller's ``(stage, done, total)`` calls."""

    def __init__(self, callback: ProgressCallback | None, stage: str, total: int) -> None:
        self.callback, self.stage, self.total, self.done = callback, stage, total, 0
        if callback is not None:
            callback(stage, 0, total)

    def __call__(self, moved: int) -> None:
        """Count ``moved`` more bytes and tell the caller."""
        self.done += moved
        if self.callback is not None:
            self.callback(self.stage, min(self.done, self.total), self.total)


def meter(callback: ProgressCallback | None, stage: str, total: int) -> Progress | None:
    """A store ``progress`` for ``callback`` (None when there is no callback)."""
    return None if callback is None else Meter(callback, stage, total)


def hash_file(path: Path, progress: ProgressCallback | None = None) -> tuple[str, int]:
    """SHA-256 and size of a file, read in chunks."""
    digest = hashlib.sha256()
    step = meter(progress, "hashing", path.stat().st_size)
    size = 0
    with open(path, "rb") as fh:
        while piece := fh.read(CHUNK):
            digest.update(piece)
            size += len(piece)
            if step is not None:
                step(len(piece))
    return digest.hexdigest(), size


@dataclass
class Source:
    """Bytes to store: their SHA-256 and size, and where they are (in memory, a file, or another store's blob)."""

    digest: str
    size: int
    data: bytes | None = None
    path: Path | None = None
    blob: tuple[ObjectStore, str] | None = None
    #: The file's size, inode, modification and change times when it was hashed (see :meth:`unchanged`).
    identity: tuple[int, ...] | None = None
    _cleanup: list[Path] = field(default_factory=list, repr=False)

    @classmethod
    def of_bytes(cls, data: bytes) -> Source:
        """Bytes in hand."""
        return cls(hashlib.sha256(data).hexdigest(), len(data), data=bytes(data))

    @classmethod
    def of_path(cls, path: str | os.PathLike[str], progress: ProgressCallback | None = None) -> Source:
        """A file, hashed in one pass (not copied).

        Raises:
            InvalidMetadata: the file cannot be read.

        """
        p = Path(path)
        try:
            before = _identity(p)  # taken before the hash: any later change to the file shows in it
            digest, size = hash_file(p, progress)
        except OSError as exc:
            raise InvalidMetadata(f"cannot read model file {p}: {exc.strerror or exc}") from None
        return cls(digest, size, path=p, identity=before)

    @classmethod
    def of_stream(cls, stream: BinaryIO, progress: ProgressCallback | None = None) -> Source:
        """A readable stream, spooled to a private temporary file while hashed (it is deleted by :meth:`close`)."""
        fd, name = tempfile.mkstemp(prefix="pmr-spool-")
        digest = hashlib.sha256()
        step = meter(progress, "hashing", 0)
        try:
            with os.fdopen(fd, "wb") as out:
                size = copy_file(stream, out, step, digest)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return cls(digest.hexdigest(), size, path=Path(name), identity=_identity(Path(name)), _cleanup=[Path(name)])

    @classmethod
    def of_blob(cls, store: ObjectStore, key: str, digest: str, size: int) -> Source:
        """A blob of another store (a copy between registries)."""
        return cls(digest, size, blob=(store, key))

    @contextlib.contextmanager
    def reader(self) -> Iterator[BinaryIO]:
        """A seekable reader of the bytes (the skops review reads the zip directory and schema only)."""
        import io

        if self.data is not None:
            yield io.BytesIO(self.data)
        elif self.path is not None:
            with open(self.path, "rb") as fh:
                yield fh
        else:
            assert self.blob is not None
            with self.blob[0].open_read(self.blob[1]) as fh:
                yield fh

    def unchanged(self) -> bool:
        """Whether the file is still the one hashed: same size, inode, device, modification and change times.

        Any write to a file changes its change time (``st_ctime_ns``), which no one can set back by hand, so the
        bytes stored are the bytes hashed and reviewed without reading the file a second time.
        """
        if self.path is None or self.identity is None:
            return True
        try:
            return _identity(self.path) == self.identity
        except OSError:
            return False

    def close(self) -> None:
        """Delete the temporary files this source made."""
        for path in self._cleanup:
            path.unlink(missing_ok=True)
        self._cleanup.clear()


def _identity(path: Path) -> tuple[int, ...]:
    st = os.stat(path)
    return (st.st_size, st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns)


def put_source(store: ObjectStore, source: Source, progress: ProgressCallback | None = None) -> bool:
    """Store ``source`` as its blob; True when the blob was already there and was reused (not sent).

    Raises:
        IntegrityError: the bytes sent (or copied) are not the ones hashed; nothing is published.

    """
    key = keys.blob_key(source.digest)
    if source.data is not None and source.size <= REWRITE_MAX:
        from prefect_model_registry.registry.core import versions

        versions.put_blob(store, source.data)
        return False
    if store.size(key) == source.size:
        mark_use(store, source.digest)
        return True
    if source.data is not None and source.size < settings().multipart_threshold:
        store.put(key, source.data)
    elif source.data is not None:  # bytes in hand too large for one PUT (S3 takes at most 5 GiB): sent in parts
        with tempfile.TemporaryDirectory(prefix="pmr-bytes-") as tmp:
            path = Path(tmp) / "blob"
            path.write_bytes(source.data)
            store.put_file(key, path, sha256=source.digest, progress=meter(progress, "uploading", source.size))
    elif source.path is not None:
        sent = meter(progress, "uploading", source.size)
        if source.identity is not None:  # checked unchanged since it was hashed (one stat, not a second read)
            store.put_file(key, source.path, unchanged=source.unchanged, progress=sent)
        else:
            store.put_file(key, source.path, sha256=source.digest, progress=sent)
    else:
        assert source.blob is not None
        copy_blob(source.blob[0], source.blob[1], store, source.digest, source.size, progress)
    return False


def mark_use(store: ObjectStore, digest: str) -> None:
    """Record that a blob is being reused now (retention's grace period counts from the newest use)."""
    store.put(keys.blob_use_key(digest), str(time.time()).encode())


def age(store: ObjectStore, key: str, now: float) -> float | None:
    """Seconds since a blob was last written or reused (None when it is missing)."""
    written = store.modified(key)
    if written is None:
        return None
    if key.startswith(keys.BLOBS):
        used = store.modified(keys.blob_use_key(key[len(keys.BLOBS) :]))
        if used is not None:
            written = max(written, used)
    return now - written


def copy_blob(
    source: ObjectStore,
    source_key: str,
    target: ObjectStore,
    digest: str,
    size: int,
    progress: ProgressCallback | None = None,
) -> None:
    """Copy a blob between stores: server-side within one endpoint, else streamed through a temporary file.

    A server-side copy names the source object's ETag, so what lands is the object the caller reviewed. It is
    then checked without reading it back when it can be: its size, and its ETag against the source's (equal ETags
    are equal MD5s of equal parts). When the ETags cannot be compared (parts of other sizes) the copy is read
    back and hashed. A streamed copy is hashed on the way in and on the way out.

    Raises:
        IntegrityError: the copy does not hold the bytes of ``digest`` (it is deleted).

    """
    key = keys.blob_key(digest)
    if target.copy_within(source, source_key, key, progress=meter(progress, "copying", size)):
        theirs, ours = source.etag(source_key), target.etag(key)
        if target.size(key) == size and theirs is not None and theirs == ours:
            return
        if target.size(key) == size and stream_hash(target, key) == digest:
            return
        target.delete(key)
        raise IntegrityError(f"the server-side copy of {source_key} does not hold its bytes")
    with tempfile.TemporaryDirectory(prefix="pmr-copy-") as tmp:
        path = Path(tmp) / "blob"
        path.touch()
        source.get_file(source_key, path, progress=meter(progress, "downloading", size))
        before = _identity(path)
        found, _ = hash_file(path)
        if found != digest:
            raise IntegrityError(f"{source.uri}/{source_key} is corrupt: sha256 does not match; nothing copied")
        unchanged = lambda: _identity(path) == before  # noqa: E731 - our own temporary file, checked as any other
        target.put_file(key, path, unchanged=unchanged, progress=meter(progress, "uploading", size))


def stream_hash(store: ObjectStore, key: str) -> str:
    """The SHA-256 of an object, read in chunks.

    Raises:
        ObjectNotFound: no object under ``key``.

    """
    digest = hashlib.sha256()
    for piece in store.read_chunks(key):
        digest.update(piece)
    return digest.hexdigest()


def download(
    store: ObjectStore,
    key: str,
    digest: str,
    size: int,
    target: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    what: str = "artifact",
    progress: ProgressCallback | None = None,
    cached: Path | None = None,
) -> Path:
    """Download a blob to ``target``, verified: nothing appears at ``target`` unless it hashes to ``digest``.

    Args:
        store: where the blob is.
        key: its key.
        digest: the SHA-256 the manifest records.
        size: its size (for progress).
        target: the file to write; never written through a symlink.
        overwrite: replace an existing file (else one is refused).
        what: how the blob is called in errors.
        progress: told of bytes moved.
        cached: a verified local copy to copy from instead of the store (the artifact cache).

    Raises:
        SymlinkRefused: ``target`` is a symlink.
        InvalidMetadata: ``target`` exists and ``overwrite`` is False.
        IntegrityError: the bytes do not match ``digest``, or the blob is missing; nothing is left at ``target``.

    """
    path = refuse_symlink(target, "--output")
    if path.exists() and not overwrite:
        raise InvalidMetadata(f"{path} exists; pass --force to overwrite it")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    os.close(fd)
    try:
        if cached is not None:
            shutil.copyfile(cached, tmp)  # the kernel copies; the hash below checks the result
        else:
            try:
                store.get_file(key, tmp, progress=meter(progress, "downloading", size))
            except ObjectNotFound:
                raise IntegrityError(f"{what} is missing from the store ({key})") from None
        found, _ = hash_file(tmp, progress if size > CHUNK else None)
        if found != digest:
            raise IntegrityError(f"{what} is corrupt: sha256 {found[:12]}… != registered {digest[:12]}…")
        publish_file(tmp, path, overwrite=overwrite, what="--output")
    finally:
        tmp.unlink(missing_ok=True)
    return path


def file_source(data: Any) -> Source:
    """A :class:`Source` for what a caller registers: bytes, or a readable binary stream.

    Raises:
        InvalidMetadata: anything else, or empty bytes.

    """
    if isinstance(data, Source):
        return data
    if isinstance(data, bytes | bytearray):
        if not data:
            raise InvalidMetadata("artifact must be non-empty bytes")
        return Source.of_bytes(bytes(data))
    if hasattr(data, "read"):
        source = Source.of_stream(data)
        if source.size == 0:
            source.close()
            raise InvalidMetadata("artifact stream is empty")
        return source
    raise InvalidMetadata(f"artifact must be bytes or a readable binary stream, not {type(data).__name__}")


def open_dataset(uri: str) -> Source:
    """The bytes of a dataset at a local path, ``file://`` URI or ``s3://bucket/key``, hashed in one pass.

    A local file is read where it is; an S3 object is downloaded to a private temporary file first (deleted by
    :meth:`Source.close`). Memory stays bounded either way.

    Raises:
        DatasetUnavailable: it cannot be read.

    """
    from prefect_model_registry.registry.core.lineage import dataset_location
    from prefect_model_registry.registry.errors import DatasetUnavailable

    where = dataset_location(uri)
    if not isinstance(where, Path):
        from botocore.exceptions import BotoCoreError, ClientError

        client, bucket, key = where
        fd, name = tempfile.mkstemp(prefix="pmr-dataset-")
        try:
            with os.fdopen(fd, "r+b") as out:
                client.download_fileobj(bucket, key, out)
            identity = _identity(Path(name))
            digest, size = hash_file(Path(name))
        except (BotoCoreError, ClientError, OSError) as exc:
            Path(name).unlink(missing_ok=True)
            raise DatasetUnavailable(f"cannot read dataset {uri}: {exc}") from None
        return Source(digest, size, path=Path(name), identity=identity, _cleanup=[Path(name)])
    try:
        identity = _identity(where)
        digest, size = hash_file(where)
    except OSError as exc:
        raise DatasetUnavailable(f"cannot read dataset {uri}: {exc.strerror or exc}") from None
    return Source(digest, size, path=where, identity=identity)
