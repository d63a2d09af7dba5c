"""A local cache of verified artifacts, keyed by SHA-256, for processes that reload models (serving).

A serving process that reloads ``@production`` every few minutes should download the artifact only when the
version changed. Entries are named by the SHA-256 of their bytes, written only after the bytes were checked
against that hash, and checked again on every read: a corrupted or swapped file is deleted and never served,
so the cache can only ever return the bytes the manifest names.

Location: ``PMR_CACHE_DIR``, else ``$XDG_CACHE_HOME/pmr/artifacts``, else ``~/.cache/pmr/artifacts``;
``PMR_CACHE_DIR=off`` turns it off.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from prefect_model_registry.registry.models import sha256
from prefect_model_registry.registry.settings import CACHE_DIR, CACHE_OFF, settings

CACHE_ENV = CACHE_DIR


def default_dir() -> Path | None:
    """Where the cache lives (None when turned off)."""
    configured = settings().cache_dir
    if configured == CACHE_OFF:
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pmr" / "artifacts"


class ArtifactCache:
    """Verified artifact bytes by SHA-256 in a directory (safe across processes: atomic renames).

    Large artifacts are served as files (:meth:`file`), checked by a streamed hash and never read whole.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        """The file of ``digest`` (two-level fan-out)."""
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a SHA-256 hex digest: {digest!r}")
        return self.root / digest[:2] / digest

    def get(self, digest: str) -> bytes | None:
        """The cached bytes of ``digest``, or None; an entry whose bytes do not hash to ``digest`` is dropped."""
        path = self.path(digest)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if sha256(data) != digest:
            path.unlink(missing_ok=True)  # corrupted or swapped: never served, fetched again
            return None
        return data

    def file(self, digest: str) -> Path | None:
        """The cached file of ``digest`` once its bytes are checked (streamed), or None; a bad entry is dropped."""
        path = self.path(digest)
        try:
            found = hashlib.sha256()
            with open(path, "rb") as fh:
                while piece := fh.read(1024 * 1024):
                    found.update(piece)
        except OSError:
            return None
        if found.hexdigest() != digest:
            path.unlink(missing_ok=True)
            return None
        return path

    def put_file(self, digest: str, source: Path) -> None:
        """Keep a copy of the verified file ``source`` as ``digest`` (hashed again as it is copied in)."""
        path = self.path(digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            found = hashlib.sha256()
            with (
                open(source, "rb") as src,
                tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False) as tmp,
            ):
                while piece := src.read(1024 * 1024):
                    found.update(piece)
                    tmp.write(piece)
            if found.hexdigest() == digest:
                os.replace(tmp.name, path)
            else:
                os.unlink(tmp.name)
        except OSError:
            return

    def put(self, digest: str, data: bytes) -> None:
        """Keep ``data`` as ``digest`` if it hashes to it (best effort: a full disk only costs a download)."""
        if sha256(data) != digest:
            return
        path = self.path(digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False) as tmp:
                tmp.write(data)
            os.replace(tmp.name, path)
        except OSError:
            return
