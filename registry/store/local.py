"""A local-directory object store, as safe as S3 against several processes on one machine.

Create-only writes are ``os.link`` of a fully written temporary file: the link fails if the name exists and a
reader never sees a half-written object. Compare-and-swap takes an ``fcntl`` lock per key, checks the ETag
and publishes with ``os.replace``. Readers take no lock: ``os.replace`` is atomic.

Deletes (retention, ``pmr verify --repair --apply``) never follow a symlink out of the registry: each directory
on the way to the file is opened with ``O_NOFOLLOW`` from the root, and the file is unlinked in the last one
(a symlink in the way is refused with ``SymlinkRefused``). A ``.tmp`` or ``.locks`` that is
a symlink is never listed or cleaned; :meth:`LocalStore.unsafe_links` names it for ``verify``.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from prefect_model_registry.registry.errors import (
    BucketNotFound,
    IntegrityError,
    ObjectNotFound,
    PreconditionFailed,
    StoreAccessDenied,
    StoreError,
    SymlinkRefused,
)
from prefect_model_registry.registry.store.base import (
    ObjectStore,
    Progress,
    StoredObject,
    check_key,
    check_unchanged,
    copy_file,
)

_INTERNAL = (".locks", ".tmp")
_DIR_NOFOLLOW = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def _kernel_copy(src: BinaryIO, out: BinaryIO, progress: Progress | None, step: int = 64 * 1024 * 1024) -> None:
    """Copy ``src`` to ``out`` inside the kernel (``copy_file_range``), a step at a time for progress.

    Falls back to a chunked copy through Python where the kernel cannot (another filesystem on an old kernel).
    """
    while True:
        try:
            moved = os.copy_file_range(src.fileno(), out.fileno(), step)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            copy_file(src, out, progress)
            return
        if not moved:
            return
        if progress is not None:
            progress(moved)


def _etag(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class LocalStore(ObjectStore):
    """Objects as files under a root directory."""

    def __init__(self, root: Path, *, create: bool = True) -> None:
        self.root = root.expanduser().absolute()
        self.uri = str(self.root)
        self._create = create

    def _ensure_root(self) -> None:
        if not self.root.is_dir():
            if not self._create:
                raise BucketNotFound(f"registry directory {self.root} does not exist")
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create registry directory {self.root}: {exc}") from exc
        for sub in _INTERNAL:
            (self.root / sub).mkdir(exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def check(self) -> None:
        """Fail if the directory is missing (and may not be created) or not writable.

        Nothing is created here: a registry that is only read never leaves a directory behind; the first
        write creates it.
        """
        if self.root.is_dir():
            if not os.access(self.root, os.W_OK):
                raise StoreAccessDenied(f"registry directory {self.root} is not writable")
            return
        if not self._create:
            raise BucketNotFound(f"registry directory {self.root} does not exist")
        parent = self.root.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise StoreAccessDenied(f"registry directory {self.root} cannot be created under {parent}")

    def _missing_root(self) -> bool:
        """The directory is absent: an error unless it may be created, else an empty registry."""
        if self.root.is_dir():
            return False
        if not self._create:
            raise BucketNotFound(f"registry directory {self.root} does not exist")
        return True

    def get(self, key: str) -> StoredObject:
        """Read an object."""
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            self._missing_root()
            raise ObjectNotFound(f"no object {key!r} in {self.uri}") from None
        return StoredObject(data, _etag(data))

    def exists(self, key: str) -> bool:
        """Tell whether an object exists."""
        return self._path(key).is_file()

    def size(self, key: str) -> int | None:
        """The file's size, or None when it is missing."""
        try:
            return self._path(key).stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            return None

    def open_read(self, key: str) -> BinaryIO:
        """The object's file, open for reading."""
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            self._missing_root()
            raise ObjectNotFound(f"no object {key!r} in {self.uri}") from None

    def read_chunks(self, key: str) -> Iterator[bytes]:
        """The file's bytes in chunks (see :meth:`ObjectStore.read_chunks`)."""
        with self.open_read(key) as fh:
            while piece := fh.read(1024 * 1024):
                yield piece

    def get_file(self, key: str, path: Path, *, progress: Progress | None = None) -> None:
        """Copy the object's file into ``path`` in chunks."""
        with self.open_read(key) as fh, open(path, "wb") as out:
            copy_file(fh, out, progress)

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        sha256: str | None = None,
        unchanged: Callable[[], bool] | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Copy the file ``path`` in as ``key``: into ``.tmp`` by the kernel, synced, then renamed into place.

        See :meth:`ObjectStore.put_file` for ``sha256`` (the copy is hashed) and ``unchanged`` (checked just
        before the rename): either refuses a file that changed, and nothing is published.
        """
        target = self._path(key)
        self._ensure_root()
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.root / ".tmp")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "r+b") as out, open(path, "rb") as src:
                _kernel_copy(src, out, progress)
                out.flush()
                os.fsync(out.fileno())
                if sha256 is not None:
                    out.seek(0)
                    digest = hashlib.sha256()
                    while piece := out.read(1024 * 1024):
                        digest.update(piece)
                    if digest.hexdigest() != sha256:
                        raise IntegrityError(
                            f"{path} changed while it was copied in (sha256 differs from its first read)"
                        )
            check_unchanged(path, None, None, unchanged)
            os.replace(tmp, target)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise StoreAccessDenied(f"cannot write {key!r} in {self.uri}: {exc}") from exc
            raise StoreError(f"cannot write {key!r} in {self.uri}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def _write_temp(self, data: bytes) -> Path:
        fd, tmp = tempfile.mkstemp(dir=self.root / ".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return Path(tmp)

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        name = hashlib.sha256(key.encode()).hexdigest()
        with open(self.root / ".locks" / name, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def put(self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None) -> str:
        """Write an object whole; see :meth:`ObjectStore.put`."""
        path = self._path(key)
        self._ensure_root()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._write_temp(data)
        try:
            if create_only:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise PreconditionFailed(f"object {key!r} already exists", taken=True) from None
                return _etag(data)
            with self._lock(key):
                if if_match is not None:
                    try:
                        current = _etag(path.read_bytes())
                    except FileNotFoundError:
                        raise PreconditionFailed(f"object {key!r} does not exist") from None
                    if current != if_match:
                        raise PreconditionFailed(f"object {key!r} changed (etag {current} != {if_match})")
                os.replace(tmp, path)
                return _etag(data)
        except OSError as exc:
            if isinstance(exc, StoreError):
                raise
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise StoreAccessDenied(f"cannot write {key!r} in {self.uri}: {exc}") from exc
            raise StoreError(f"cannot write {key!r} in {self.uri}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def list(self, prefix: str) -> Iterator[str]:
        """Yield keys under ``prefix`` in lexicographic order."""
        if self._missing_root():
            return
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            if rel == ".":
                dirnames[:] = [d for d in dirnames if d not in _INTERNAL]
                rel = ""
            base = f"{rel}/" if rel else ""
            # Prune directories that cannot hold matching keys.
            dirnames[:] = [
                d for d in dirnames if (base + d + "/").startswith(prefix) or prefix.startswith(base + d + "/")
            ]
            keys.extend(base + f for f in filenames if (base + f).startswith(prefix))
        yield from sorted(keys)

    def modified(self, key: str) -> float | None:
        """The file's modification time."""
        try:
            return self._path(key).stat().st_mtime
        except OSError:
            return None

    def _is_link(self, rel: str) -> bool:
        try:
            return stat.S_ISLNK(os.lstat(self.root / rel).st_mode)
        except OSError:
            return False

    def unsafe_links(self) -> builtins.list[tuple[str, str]]:
        """``(key, problem)`` for each of the store's own directories that is a symlink (never followed)."""
        return [
            (sub, f"{sub} is a symlink to {os.readlink(self.root / sub)} (never followed)")
            for sub in _INTERNAL
            if self._is_link(sub)
        ]

    @contextlib.contextmanager
    def _dir_fd(self, parts: builtins.list[str], what: str) -> Iterator[int | None]:
        """A descriptor of ``root/parts…`` opened without following any symlink on the way (None: missing)."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)  # the root itself is the configured location
        try:
            for part in parts:
                try:
                    child = os.open(part, _DIR_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    yield None
                    return
                except OSError as exc:
                    if stat.S_ISLNK(os.lstat(part, dir_fd=fd).st_mode):
                        raise SymlinkRefused(f"{what}: {part} is a symlink; the registry never follows one") from None
                    if exc.errno == errno.ENOTDIR:
                        yield None
                        return
                    raise
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def temp_files(self) -> builtins.list[tuple[str, float]]:
        """Files left in ``.tmp`` by writers killed between writing and publishing (none if it is a symlink)."""
        now = time.time()
        found = []
        if self._is_link(".tmp"):
            return []  # reported by unsafe_links: listing it would list (and repair would clean) another directory
        try:
            entries = list(os.scandir(self.root / ".tmp"))
        except OSError:
            return []
        for entry in entries:
            try:
                found.append((entry.name, now - entry.stat(follow_symlinks=False).st_mtime))
            except OSError:
                continue
        return sorted(found)

    def remove_temp(self, name: str) -> None:
        """Delete one leftover temporary file (only a plain name inside ``.tmp``)."""
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"not a temporary file name: {name!r}")
        self._unlink([".tmp"], name, f"temporary file {name}")

    def delete(self, key: str) -> None:
        """Delete an object; missing is fine."""
        if self._missing_root():
            return
        *parents, leaf = check_key(key).split("/")
        with self._lock(key):
            self._unlink(parents, leaf, f"object {key!r}")

    def _unlink(self, parents: builtins.list[str], leaf: str, what: str) -> None:
        """Unlink ``leaf`` in ``root/parents…``, reached without following a symlink; missing is fine.

        A symlink as ``leaf`` is itself removed (unlinking a link never touches its target).
        """
        with self._dir_fd(parents, what) as fd:
            if fd is None:
                return
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leaf, dir_fd=fd)
