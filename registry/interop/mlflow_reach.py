"""What an MLflow import may reach, and how much (see ``mlflow_source`` for the rules).

The tracking server's origin, the artifact roots the importer allows, credentials kept out of messages, each
version's size budget, and the private directory its files are downloaded into (:class:`Spool`).
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.client import HTTPMessage
from pathlib import Path
from typing import IO

from prefect_model_registry.registry.errors import (
    ArtifactLocationRefused,
    ArtifactTooLarge,
    InvalidMetadata,
    StoreUnavailable,
)
from prefect_model_registry.registry.settings import (
    VARIABLES,
    settings,
)

#: Seconds to wait for one request to the tracking server.
TIMEOUT_S = 60.0


#: Cap on one metadata (JSON) answer, so an endless answer cannot exhaust memory.
MAX_METADATA_BYTES = 64 * 1024**2


#: The CLI option that allows a local or S3 artifact root, named in refusals.
ALLOW_OPTION = "--allow-artifact-root"


# Everything between "scheme://" (or the start) and the last "@" before the query: a greedy match also catches
# an unencoded "/" or ":" in a password, where urlsplit would see part of the password as host or path.
USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)?(?P<userinfo>[^?#]*)@")


def redact(url: str) -> str:
    """``url`` without its ``user:password@`` part, for messages, errors and reports."""
    return USERINFO.sub(r"\g<scheme>", url, count=1)


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of ``url`` (the scheme's default port when none is given)."""
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default


class SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only within the tracking server's origin: urllib's own copies Authorization anywhere."""

    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: HTTPMessage, newurl: str
    ) -> urllib.request.Request | None:
        """The redirected request if it stays on the origin; else the redirect is refused."""
        try:
            same = origin(newurl) == origin(req.full_url)
        except ValueError:  # a malformed Location (bad port)
            same = False
        if not same:
            fp.close()
            raise StoreUnavailable(
                f"the MLflow server redirected {redact(req.full_url)} to another origin, {redact(newurl)}: not "
                "followed, so credentials stay with the tracking server (give that server as --tracking-uri "
                "if it is the right one)"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


OPENER = urllib.request.build_opener(SameOriginRedirects)


def bad_segment(path: str) -> bool:
    """Whether a relative artifact path could leave its directory (``..``, absolute, a backslash, empty parts)."""
    for form in {path, urllib.parse.unquote(path)}:
        if form.startswith("/") or "\\" in form or "\x00" in form:
            return True
        if any(part in ("", ".", "..") for part in form.split("/")):
            return True
    return False


def cap(given: int | None, variable: str) -> int:
    """A cap given by the caller, else the setting ``variable`` (its default when unset)."""
    if given is None:
        return int(getattr(settings(), VARIABLES[variable].field))
    try:
        value = int(given)
    except ValueError:
        raise InvalidMetadata(f"{variable} must be a whole number of bytes or files, got {given!r}") from None
    if value < 0:
        raise InvalidMetadata(f"{variable} must not be negative, got {value}")
    return value


@dataclass(frozen=True)
class ArtifactRoots:
    """Where artifacts named by the server may be read besides its proxy: local directories and S3 prefixes.

    Attributes:
        local: resolved directories (symlinks followed once, here).
        s3: ``(bucket, key prefix)`` pairs; an empty prefix allows the whole bucket.

    """

    local: tuple[Path, ...] = ()
    s3: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, roots: Iterable[str | os.PathLike[str]]) -> ArtifactRoots:
        """Roots from ``s3://bucket[/prefix]``, ``file:///dir`` or a directory path.

        Raises:
            InvalidMetadata: another scheme, a remote ``file://host/``, an S3 root without a bucket or with
                ``..`` or ``.`` segments.

        """
        local: list[Path] = []
        s3: list[tuple[str, str]] = []
        for root in roots:
            if isinstance(root, os.PathLike):
                local.append(Path(root).resolve())
                continue
            parts = urllib.parse.urlsplit(root)
            if parts.scheme == "s3":
                prefix = parts.path.strip("/")
                if not parts.netloc or "@" in parts.netloc or (prefix and bad_segment(prefix)):
                    raise InvalidMetadata(f"{ALLOW_OPTION} {redact(root)!r}: give s3://bucket[/prefix]")
                s3.append((parts.netloc, prefix))
            elif parts.scheme == "file" and parts.netloc in ("", "localhost"):
                local.append(Path(urllib.parse.unquote(parts.path)).resolve())
            elif parts.scheme == "" and root:
                local.append(Path(root).resolve())
            else:
                raise InvalidMetadata(
                    f"{ALLOW_OPTION} takes s3://bucket[/prefix] or a local directory, not {redact(root)!r}"
                )
        return cls(tuple(local), tuple(s3))

    def local_root(self, path: Path, uri: str) -> Path:
        """The allowed root holding the resolved ``path``.

        Raises:
            ArtifactLocationRefused: no allowed root holds it.

        """
        for root in self.local:
            if path.is_relative_to(root):  # on resolved paths: /srv/mlruns-evil is not under /srv/mlruns
                return root
        raise ArtifactLocationRefused(
            f"the MLflow server names artifacts at {redact(uri)!r} ({path}), outside every allowed local root "
            f"{[str(r) for r in self.local]}: not read (allow a directory that holds it with {ALLOW_OPTION})"
        )

    def check_s3(self, bucket: str, key: str, uri: str) -> None:
        """Refuse ``s3://bucket/key`` unless an allowed root's bucket is ``bucket`` and its prefix holds ``key``.

        Raises:
            ArtifactLocationRefused: outside every allowed root, or a ``..`` or ``.`` segment in the key.

        """
        if key and bad_segment(key.rstrip("/")):
            raise ArtifactLocationRefused(f"the MLflow server names {redact(uri)!r}, a key with '..' or '.' parts")
        for root_bucket, prefix in self.s3:
            if bucket == root_bucket and (not prefix or key == prefix or key.startswith(prefix + "/")):
                return
        raise ArtifactLocationRefused(
            f"the MLflow server names artifacts at {redact(uri)!r}, outside every allowed S3 root "
            f"{[f's3://{b}/{p}' for b, p in self.s3]}: not read with this machine's credentials "
            f"(allow a bucket prefix that holds it with {ALLOW_OPTION})"
        )


class Budget:
    """One version's caps, spent while its files are listed (declared sizes) and read (actual bytes)."""

    def __init__(self, max_bytes: int, max_files: int) -> None:
        self.max_bytes, self.max_files = max_bytes, max_files
        self.entries = self.declared = self.read = 0

    def declare(self, size: int = 0) -> None:
        """Count one listed entry of ``size`` bytes against the budget (refused when over it)."""
        self.entries += 1
        if self.entries > self.max_files:
            raise ArtifactTooLarge(
                f"more than {self.max_files} artifact files and directories (PMR_MLFLOW_MAX_VERSION_FILES)"
            )
        self.declared += max(size, 0)
        self._check(self.declared)

    @property
    def left(self) -> int:
        """Bytes that may still be read."""
        return self.max_bytes - self.read

    def take(self, data: bytes) -> bytes:
        """Count bytes read against the budget; ``data`` itself when within it."""
        self.read += len(data)
        self._check(self.read)
        return data

    def _check(self, size: int) -> None:
        if size > self.max_bytes:
            raise ArtifactTooLarge(f"artifacts larger than {self.max_bytes} bytes (PMR_MLFLOW_MAX_VERSION_BYTES)")


#: Bytes read at a time, from a metadata answer or into a spooled file.
CHUNK = 1 << 20


def read_limited(read: Callable[[int], bytes], limit: int) -> bytes:
    """Up to ``limit + 1`` bytes from ``read(n)`` (one more shows there were more), a chunk at a time.

    ``read(limit + 1)`` at once would ask for a buffer of the whole cap for every answer.
    """
    chunks: list[bytes] = []
    left = max(limit, 0) + 1
    while left > 0:
        chunk = read(min(left, CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class Spool:
    """A private directory one version's files are downloaded into, a chunk at a time, within its budget.

    Each file gets a name of the spool's own (``0``, ``1``...), never one the server chose, so no listing can
    name a path of this machine; :attr:`files` maps the version's relative paths to them. The directory is the
    caller's (a ``TemporaryDirectory``: mode 0700), each file is created new with mode 0600.
    """

    def __init__(self, directory: Path, budget: Budget) -> None:
        self.directory, self.budget = directory, budget
        self.files: dict[str, Path] = {}
        self._made = 0

    def add(self, rel: str, read: Callable[[int], bytes]) -> Path:
        """Copy what ``read(n)`` gives to a new file for ``rel``, until it gives ``b""`` or the budget is spent.

        Never asks for more than one byte past the budget; the file is deleted when this fails, so a version
        over its budget leaves nothing behind.

        Raises:
            ArtifactTooLarge: the budget was exceeded (as soon as it is, not at the end of the file).

        """
        path = self.directory / str(self._made)
        self._made += 1
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := read(min(CHUNK, max(self.budget.left, 0) + 1)):
                    out.write(self.budget.take(chunk))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self.files[rel] = path
        return path


def local_files(top: Path, root: Path, spool: Spool) -> dict[str, Path]:
    """The files under the resolved directory ``top``, each of which must resolve inside ``root``, spooled."""
    if not top.is_dir():
        return {}
    budget = spool.budget
    found: list[tuple[str, Path]] = []
    seen: set[Path] = set()
    pending = [(top, "")]
    while pending:
        directory, prefix = pending.pop()
        if directory in seen:  # a symlink loop inside the root
            continue
        seen.add(directory)
        for entry in sorted(directory.iterdir()):
            real = entry.resolve()
            if not real.is_relative_to(root):
                raise ArtifactLocationRefused(
                    f"{entry} resolves to {real}, outside the allowed artifact root {root}: not read"
                )
            if real.is_dir():
                budget.declare()
                pending.append((real, f"{prefix}{entry.name}/"))
            elif real.is_file():
                budget.declare(real.stat().st_size)
                found.append((f"{prefix}{entry.name}", real))
    for rel, real in sorted(found):
        # O_NOFOLLOW: a file swapped for a symlink after the check above is not followed
        with os.fdopen(os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb") as handle:
            spool.add(rel, handle.read)
    return spool.files


def s3_files(bucket: str, prefix: str, spool: Spool) -> dict[str, Path]:
    """Every object under ``prefix`` of ``bucket``, by its path below the prefix, spooled within its budget."""
    import boto3  # the S3 backend's dependency already

    client = boto3.client("s3", endpoint_url=os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None)
    listed: list[tuple[str, str]] = []
    base = prefix.rstrip("/") + "/"
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(base) :]
            if not rel or rel.endswith("/"):  # a "directory" marker object, not a file
                continue
            if bad_segment(rel):
                raise ArtifactLocationRefused(f"s3://{bucket}/{obj['Key']}: a key with '..' or '.' parts; not read")
            spool.budget.declare(int(obj.get("Size", 0)))
            listed.append((rel, obj["Key"]))
    for rel, key in listed:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            spool.add(rel, body.read)
        finally:
            body.close()
    return spool.files
