"""Read an MLflow model registry over MLflow's REST API: no MLflow package needed in this environment.

MLflow's own pins (sqlalchemy, fastapi, pandas…) need not agree with Prefect's, so ``pmr import-mlflow`` talks
to a tracking server (``mlflow server``, Databricks, any MLflow-compatible endpoint) with the standard library.
A sqlite or file store is served for the import with ``mlflow server --backend-store-uri sqlite:///mlflow.db``.

Authentication follows MLflow's variables: ``MLFLOW_TRACKING_TOKEN`` (bearer) or ``MLFLOW_TRACKING_USERNAME``
and ``MLFLOW_TRACKING_PASSWORD`` (basic); ``user:password@`` in the tracking URI is taken as basic auth too
(before the variables) and never printed.

The server is trusted for metadata only. What it says about where a version's files are is checked before
anything is read:

- ``mlflow-artifacts:/…`` (the server's artifact proxy) is read from the tracking server itself, never another
  host, and every path of its listing must stay inside the version's directory (no ``..``, no absolute path).
- a local path (``file://`` or bare) or a bucket (``s3://``, with ``MLFLOW_S3_ENDPOINT_URL`` for S3-compatible
  stores) is read only under a root the importer allows (``allowed_roots``, ``pmr import-mlflow
  --allow-artifact-root``): local paths are compared after resolving symlinks, every file included, and S3
  keys by exact bucket and a prefix ending at a ``/``. Anything else raises :class:`ArtifactLocationRefused`
  before a byte is read: the importer's home directory and credentials are not the server's to use.
- requests keep to the tracking server's origin: a redirect elsewhere is refused, so the token or password is
  never sent to another host.
- a version's files are capped (``PMR_MLFLOW_MAX_VERSION_BYTES``, default 2 GiB, held in memory while it is
  imported; ``PMR_MLFLOW_MAX_VERSION_FILES``, default 10,000 files and directories), checked against the
  listing's sizes before reading and against the bytes while reading: :class:`ArtifactTooLarge`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.client import HTTPMessage
from pathlib import Path
from typing import IO, Any

from prefect_model_registry.registry.errors import (
    ArtifactLocationRefused,
    ArtifactTooLarge,
    InvalidMetadata,
    ObjectNotFound,
    RegistryError,
    StoreUnavailable,
)
from prefect_model_registry.registry.settings import (
    MLFLOW_MAX_VERSION_BYTES,
    MLFLOW_MAX_VERSION_FILES,
    VARIABLES,
    settings,
)

#: Seconds to wait for one request to the tracking server.
TIMEOUT_S = 60.0
#: Default cap on one version's artifact bytes (``PMR_MLFLOW_MAX_VERSION_BYTES``): they are held in memory.
MAX_VERSION_BYTES: int = VARIABLES[MLFLOW_MAX_VERSION_BYTES].default  # 2 GiB
#: Default cap on one version's files and directories (``PMR_MLFLOW_MAX_VERSION_FILES``).
MAX_VERSION_FILES: int = VARIABLES[MLFLOW_MAX_VERSION_FILES].default  # 10,000
#: Cap on one metadata (JSON) answer, so an endless answer cannot exhaust memory.
MAX_METADATA_BYTES = 64 * 1024**2
#: The CLI option that allows a local or S3 artifact root, named in refusals.
ALLOW_OPTION = "--allow-artifact-root"

# Everything between "scheme://" (or the start) and the last "@" before the query: a greedy match also catches
# an unencoded "/" or ":" in a password, where urlsplit would see part of the password as host or path.
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)?(?P<userinfo>[^?#]*)@")


def redact(url: str) -> str:
    """``url`` without its ``user:password@`` part, for messages, errors and reports."""
    return _USERINFO.sub(r"\g<scheme>", url, count=1)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only within the tracking server's origin: urllib's own copies Authorization anywhere."""

    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: HTTPMessage, newurl: str
    ) -> urllib.request.Request | None:
        try:
            same = _origin(newurl) == _origin(req.full_url)
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


_OPENER = urllib.request.build_opener(_SameOriginRedirects)


def _bad_segment(path: str) -> bool:
    """Whether a relative artifact path could leave its directory (``..``, absolute, a backslash, empty parts)."""
    for form in {path, urllib.parse.unquote(path)}:
        if form.startswith("/") or "\\" in form or "\x00" in form:
            return True
        if any(part in ("", ".", "..") for part in form.split("/")):
            return True
    return False


def _cap(given: int | None, variable: str) -> int:
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
                if not parts.netloc or "@" in parts.netloc or (prefix and _bad_segment(prefix)):
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
        if key and _bad_segment(key.rstrip("/")):
            raise ArtifactLocationRefused(f"the MLflow server names {redact(uri)!r}, a key with '..' or '.' parts")
        for root_bucket, prefix in self.s3:
            if bucket == root_bucket and (not prefix or key == prefix or key.startswith(prefix + "/")):
                return
        raise ArtifactLocationRefused(
            f"the MLflow server names artifacts at {redact(uri)!r}, outside every allowed S3 root "
            f"{[f's3://{b}/{p}' for b, p in self.s3]}: not read with this machine's credentials "
            f"(allow a bucket prefix that holds it with {ALLOW_OPTION})"
        )


class _Budget:
    """One version's caps, spent while its files are listed (declared sizes) and read (actual bytes)."""

    def __init__(self, max_bytes: int, max_files: int) -> None:
        self.max_bytes, self.max_files = max_bytes, max_files
        self.entries = self.declared = self.read = 0

    def declare(self, size: int = 0) -> None:
        self.entries += 1
        if self.entries > self.max_files:
            raise ArtifactTooLarge(
                f"more than {self.max_files} artifact files and directories (PMR_MLFLOW_MAX_VERSION_FILES)"
            )
        self.declared += max(size, 0)
        self._check(self.declared)

    @property
    def left(self) -> int:
        return self.max_bytes - self.read

    def take(self, data: bytes) -> bytes:
        self.read += len(data)
        self._check(self.read)
        return data

    def _check(self, size: int) -> None:
        if size > self.max_bytes:
            raise ArtifactTooLarge(f"artifacts larger than {self.max_bytes} bytes (PMR_MLFLOW_MAX_VERSION_BYTES)")


class MlflowSource:
    """A read-only view of one MLflow tracking server's model registry.

    Args:
        tracking_uri: ``http(s)://[user:password@]host[:port][/path]``.
        allowed_roots: local directories and ``s3://bucket[/prefix]`` roots the server's download URIs may name
            (see the module docstring); by default only the server's own artifact proxy is read.
        max_version_bytes: cap on one version's artifact bytes (default ``PMR_MLFLOW_MAX_VERSION_BYTES`` or 2 GiB).
        max_version_files: cap on one version's files and directories (default ``PMR_MLFLOW_MAX_VERSION_FILES``
            or 10,000).

    Raises:
        InvalidMetadata: not an http(s) URI with a host, a bad allowed root or cap.

    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        allowed_roots: Iterable[str | os.PathLike[str]] = (),
        max_version_bytes: int | None = None,
        max_version_files: int | None = None,
    ) -> None:
        match = _USERINFO.match(tracking_uri)
        self._basic: tuple[str, str] | None = None
        if match and match.group("scheme"):
            user, _, password = match.group("userinfo").partition(":")
            self._basic = (urllib.parse.unquote(user), urllib.parse.unquote(password))
        shown = redact(tracking_uri)
        try:
            parsed = urllib.parse.urlsplit(shown)
            valid = parsed.scheme in ("http", "https") and bool(parsed.hostname)
            parsed.port  # noqa: B018 - a port that is not a number raises here
        except ValueError:
            valid = False
        if not valid:
            raise InvalidMetadata(
                f"tracking URI must be http(s)://host[:port] of an MLflow server, not {shown!r} "
                "(serve a sqlite or file store with `mlflow server --backend-store-uri ...`)"
            )
        self.uri = shown.rstrip("/")  # no credentials: it is shown, and recorded in lineage as the origin
        self.roots = ArtifactRoots.parse(allowed_roots)
        self.max_version_bytes = _cap(max_version_bytes, MLFLOW_MAX_VERSION_BYTES)
        self.max_version_files = _cap(max_version_files, MLFLOW_MAX_VERSION_FILES)

    # -- HTTP -----------------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        if self._basic:  # given in the tracking URI: the most explicit
            user, password = self._basic
            return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        if token:
            return {"Authorization": f"Bearer {token}"}
        env_user, env_password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
        if env_user and env_password:
            return {"Authorization": "Basic " + base64.b64encode(f"{env_user}:{env_password}".encode()).decode()}
        return {}

    def _get(self, endpoint: str, *, limit: int = MAX_METADATA_BYTES, **params: Any) -> bytes:
        """The body of a GET to the tracking server, up to ``limit + 1`` bytes (one more shows it was longer)."""
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        url = f"{self.uri}{endpoint}" + (f"?{query}" if query else "")
        request = urllib.request.Request(url, headers=self._headers())
        try:
            with _OPENER.open(request, timeout=TIMEOUT_S) as response:
                return _read(response, limit)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise ObjectNotFound(f"{url}: not found on the MLflow server") from None
            raise StoreUnavailable(f"MLflow server answered {exc.code} to {url}: {exc.read(200)!r}") from None
        except RegistryError:
            raise  # our own refusal of a redirect, already worded
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise StoreUnavailable(f"cannot reach the MLflow server at {self.uri}: {exc}") from None

    def _json(self, endpoint: str, **params: Any) -> dict[str, Any]:
        body = self._get(f"/api/2.0/mlflow/{endpoint}", **params)
        if len(body) > MAX_METADATA_BYTES:
            raise StoreUnavailable(f"{self.uri} answered {endpoint} with more than {MAX_METADATA_BYTES} bytes")
        try:
            data = json.loads(body)
        except ValueError:
            raise StoreUnavailable(f"{self.uri} did not answer {endpoint} with JSON: is it an MLflow server?") from None
        return data if isinstance(data, dict) else {}

    def _pages(self, endpoint: str, field: str, **params: Any) -> Iterator[dict[str, Any]]:
        token, seen = None, set()
        while True:
            page = self._json(endpoint, max_results=200, page_token=token, **params)
            yield from page.get(field, [])
            token = page.get("next_page_token")
            if not token:
                return
            if token in seen:  # a server that pages in circles would keep the import busy forever
                raise StoreUnavailable(f"{self.uri} repeated the page token of {endpoint}")
            seen.add(token)

    # -- the registry ---------------------------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        """Every registered model (name, description, tags, aliases, timestamps)."""
        return sorted(self._pages("registered-models/search", "registered_models"), key=lambda m: m["name"])

    def model(self, name: str) -> dict[str, Any]:
        """One registered model."""
        return self._json("registered-models/get", name=name).get("registered_model", {})

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of ``name``, oldest first."""
        escaped = name.replace("'", "\\'")
        found = self._pages("model-versions/search", "model_versions", filter=f"name='{escaped}'")
        return sorted(found, key=lambda v: (int(v["version"]), v.get("creation_timestamp", 0)))

    def run(self, run_id: str) -> dict[str, Any]:
        """A run's info and data (params, metrics, tags); empty when the run is gone."""
        try:
            return self._json("runs/get", run_id=run_id).get("run", {})
        except ObjectNotFound:
            return {}

    def download_uri(self, name: str, version: str) -> str:
        """Where the server says the version's model files are (``mlflow-artifacts:/…``, ``s3://…``, a path)."""
        return str(self._json("model-versions/get-download-uri", name=name, version=version)["artifact_uri"])

    # -- artifacts ------------------------------------------------------------------------------------
    def files(self, uri: str) -> dict[str, bytes]:
        """Every file under the artifact directory ``uri``, by relative path, once ``uri`` is found allowed.

        Raises:
            ArtifactLocationRefused: ``uri`` (or a file under it) is outside the proxy and the allowed roots.
            ArtifactTooLarge: the files exceed this source's caps; what was read is dropped.
            InvalidMetadata: a scheme this importer cannot read (``gs://``, ``dbfs:/``…).

        """
        budget = _Budget(self.max_version_bytes, self.max_version_files)
        try:
            parts = urllib.parse.urlsplit(uri)
            parts.port  # noqa: B018 - a port that is not a number raises here
        except ValueError:
            raise ArtifactLocationRefused(f"the MLflow server names {redact(uri)!r}: not a URI; not read") from None
        if parts.scheme == "mlflow-artifacts":
            return self._proxied(uri, parts, budget)
        if parts.scheme == "s3":
            key = parts.path.lstrip("/")
            if parts.query or parts.fragment:
                raise ArtifactLocationRefused(f"the MLflow server names {redact(uri)!r}: a query or fragment")
            self.roots.check_s3(parts.netloc, key, uri)
            return _s3_files(parts.netloc, key, budget)
        if parts.scheme in ("", "file"):
            if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
                raise ArtifactLocationRefused(f"the MLflow server names {redact(uri)!r} on another host: not read")
            if not self.roots.local:  # refused without touching the file system
                raise ArtifactLocationRefused(
                    f"the MLflow server names local artifacts at {redact(uri)!r}: not read (the server is trusted "
                    f"for metadata only; allow a directory that holds them with {ALLOW_OPTION})"
                )
            path = Path(urllib.parse.unquote(parts.path) if parts.scheme == "file" else uri).resolve()
            return _local_files(path, self.roots.local_root(path, uri), budget)
        raise InvalidMetadata(f"cannot read MLflow artifacts at {redact(uri)!r} (scheme {parts.scheme!r})")

    def _proxied(self, uri: str, parts: urllib.parse.SplitResult, budget: _Budget) -> dict[str, bytes]:
        ours = urllib.parse.urlsplit(self.uri)
        if parts.netloc and (parts.hostname != ours.hostname or parts.port not in (None, _origin(self.uri)[2])):
            raise ArtifactLocationRefused(
                f"the MLflow server names {redact(uri)!r}, another server's artifact proxy: only {self.uri} is read"
            )
        top = parts.path.strip("/")
        if not top or _bad_segment(top):
            raise ArtifactLocationRefused(f"the MLflow server names {redact(uri)!r}: a path with '..' or '.' parts")
        out: dict[str, bytes] = {}
        for rel, full in self._listing(top, budget):
            body = self._get("/api/2.0/mlflow-artifacts/artifacts/" + urllib.parse.quote(full), limit=budget.left)
            out[rel] = budget.take(body)
        return out

    def _listing(self, top: str, budget: _Budget) -> list[tuple[str, str]]:
        """``(relative path, server path)`` of every file under ``top``, every entry checked and counted.

        Depth first with a stack, not recursion: a server's endless nesting ends at the entry cap.
        """
        found: list[tuple[str, str]] = []
        pending = [(top, "")]
        while pending:
            path, prefix = pending.pop()
            body = self._get("/api/2.0/mlflow-artifacts/artifacts", path=path)
            if len(body) > MAX_METADATA_BYTES:
                raise ArtifactTooLarge(f"the artifact listing of {path} is larger than {MAX_METADATA_BYTES} bytes")
            try:
                entries = json.loads(body).get("files", [])
                names = [str(entry.get("path", "")) for entry in entries]
            except (ValueError, AttributeError, TypeError):
                raise StoreUnavailable(f"{self.uri} did not answer the artifact listing of {path} as MLflow") from None
            for entry, name in zip(entries, names, strict=True):
                if _bad_segment(name):  # a listing may not lead out of the version's directory
                    raise ArtifactLocationRefused(
                        f"the MLflow server lists {name!r} under {path}: a path with '..', '.' or '/' at its start, "
                        "outside the version's artifacts; not read"
                    )
                rel, full = f"{prefix}{name}", f"{path}/{name}"
                if entry.get("is_dir"):
                    budget.declare()
                    pending.append((full, f"{rel}/"))
                else:
                    size = entry.get("file_size")
                    budget.declare(size if isinstance(size, int) else 0)
                    found.append((rel, full))
        return sorted(found)


def _read(stream: IO[bytes], limit: int) -> bytes:
    """Up to ``limit + 1`` bytes of ``stream`` (one more shows it was longer), a MiB at a time.

    ``read(limit + 1)`` at once would ask for a buffer of the whole cap (2 GiB) for every file.
    """
    chunks: list[bytes] = []
    left = max(limit, 0) + 1
    while left > 0:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _local_files(top: Path, root: Path, budget: _Budget) -> dict[str, bytes]:
    """The files under the resolved directory ``top``, each of which must resolve inside ``root``."""
    if not top.is_dir():
        return {}
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
    out: dict[str, bytes] = {}
    for rel, real in sorted(found):
        # O_NOFOLLOW: a file swapped for a symlink after the check above is not followed
        with os.fdopen(os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb") as handle:
            out[rel] = budget.take(_read(handle, budget.left))
    return out


def _s3_files(bucket: str, prefix: str, budget: _Budget) -> dict[str, bytes]:
    import boto3  # the S3 backend's dependency already

    client = boto3.client("s3", endpoint_url=os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None)
    listed: list[tuple[str, str]] = []
    base = prefix.rstrip("/") + "/"
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(base) :]
            if not rel or rel.endswith("/"):  # a "directory" marker object, not a file
                continue
            if _bad_segment(rel):
                raise ArtifactLocationRefused(f"s3://{bucket}/{obj['Key']}: a key with '..' or '.' parts; not read")
            budget.declare(int(obj.get("Size", 0)))
            listed.append((rel, obj["Key"]))
    out: dict[str, bytes] = {}
    for rel, key in listed:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        out[rel] = budget.take(_read(body, budget.left))
        body.close()
    return out
