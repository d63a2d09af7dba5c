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
- a version's files are capped (``PMR_MLFLOW_MAX_VERSION_BYTES``, default 2 GiB;
  ``PMR_MLFLOW_MAX_VERSION_FILES``, default 10,000 files and directories), checked against the listing's sizes
  before reading and against the bytes while reading, a chunk at a time: :class:`ArtifactTooLarge` as soon as
  the bytes read pass the cap, and the file being written is deleted.

Files are downloaded a MiB at a time into a private temporary directory the caller gives (:meth:`MlflowSource.
download`), under names of the importer's own, never held whole in memory: a version's size costs disk, not RAM.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
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
from prefect_model_registry.registry.interop.mlflow_reach import (
    ALLOW_OPTION,
    MAX_METADATA_BYTES,
    OPENER,
    TIMEOUT_S,
    USERINFO,
    ArtifactRoots,
    Budget,
    Spool,
    bad_segment,
    cap,
    local_files,
    origin,
    read_limited,
    redact,
    s3_files,
)
from prefect_model_registry.registry.settings import (
    MLFLOW_MAX_VERSION_BYTES,
    MLFLOW_MAX_VERSION_FILES,
    VARIABLES,
)

#: Default cap on one version's artifact bytes (``PMR_MLFLOW_MAX_VERSION_BYTES``), downloaded to a temporary directory.
MAX_VERSION_BYTES: int = VARIABLES[MLFLOW_MAX_VERSION_BYTES].default  # 2 GiB
#: Default cap on one version's files and directories (``PMR_MLFLOW_MAX_VERSION_FILES``).
MAX_VERSION_FILES: int = VARIABLES[MLFLOW_MAX_VERSION_FILES].default  # 10,000


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
        match = USERINFO.match(tracking_uri)
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
        self.max_version_bytes = cap(max_version_bytes, MLFLOW_MAX_VERSION_BYTES)
        self.max_version_files = cap(max_version_files, MLFLOW_MAX_VERSION_FILES)

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

    def _open(self, endpoint: str, **params: Any) -> IO[bytes]:
        """The response to a GET to the tracking server (through :data:`OPENER`: redirects stay on its origin)."""
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        url = f"{self.uri}{endpoint}" + (f"?{query}" if query else "")
        request = urllib.request.Request(url, headers=self._headers())
        try:
            response: IO[bytes] = OPENER.open(request, timeout=TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise ObjectNotFound(f"{url}: not found on the MLflow server") from None
            raise StoreUnavailable(f"MLflow server answered {exc.code} to {url}: {exc.read(200)!r}") from None
        except RegistryError:
            raise  # our own refusal of a redirect, already worded
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise StoreUnavailable(f"cannot reach the MLflow server at {self.uri}: {exc}") from None
        return response

    def _reader(self, response: IO[bytes]) -> Callable[[int], bytes]:
        """``response.read``, its failures (a timeout, a cut connection) worded as the server being unreachable."""

        def read(size: int) -> bytes:
            try:
                return response.read(size)
            except (OSError, ValueError, http.client.HTTPException) as exc:
                raise StoreUnavailable(f"cannot reach the MLflow server at {self.uri}: {exc}") from None

        return read

    def _get(self, endpoint: str, *, limit: int = MAX_METADATA_BYTES, **params: Any) -> bytes:
        """The body of a GET to the tracking server, up to ``limit + 1`` bytes (one more shows it was longer)."""
        with self._open(endpoint, **params) as response:
            return read_limited(self._reader(response), limit)

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
    def download(self, uri: str, into: Path) -> dict[str, Path]:
        """Every file under the artifact directory ``uri``, once ``uri`` is found allowed: relative path -> file.

        Each file is written a chunk at a time to a new file in ``into`` (a private directory of the caller's,
        which deletes it), named by the importer, not the server.

        Raises:
            ArtifactLocationRefused: ``uri`` (or a file under it) is outside the proxy and the allowed roots.
            ArtifactTooLarge: the files exceed this source's caps; reading stops there and the file being written
                is deleted (those written before stay in ``into`` for the caller to delete).
            InvalidMetadata: a scheme this importer cannot read (``gs://``, ``dbfs:/``…).

        """
        spool = Spool(into, Budget(self.max_version_bytes, self.max_version_files))
        try:
            parts = urllib.parse.urlsplit(uri)
            parts.port  # noqa: B018 - a port that is not a number raises here
        except ValueError:
            raise ArtifactLocationRefused(f"the MLflow server names {redact(uri)!r}: not a URI; not read") from None
        if parts.scheme == "mlflow-artifacts":
            return self._proxied(uri, parts, spool)
        if parts.scheme == "s3":
            key = parts.path.lstrip("/")
            if parts.query or parts.fragment:
                raise ArtifactLocationRefused(f"the MLflow server names {redact(uri)!r}: a query or fragment")
            self.roots.check_s3(parts.netloc, key, uri)
            return s3_files(parts.netloc, key, spool)
        if parts.scheme in ("", "file"):
            if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
                raise ArtifactLocationRefused(f"the MLflow server names {redact(uri)!r} on another host: not read")
            if not self.roots.local:  # refused without touching the file system
                raise ArtifactLocationRefused(
                    f"the MLflow server names local artifacts at {redact(uri)!r}: not read (the server is trusted "
                    f"for metadata only; allow a directory that holds them with {ALLOW_OPTION})"
                )
            path = Path(urllib.parse.unquote(parts.path) if parts.scheme == "file" else uri).resolve()
            return local_files(path, self.roots.local_root(path, uri), spool)
        raise InvalidMetadata(f"cannot read MLflow artifacts at {redact(uri)!r} (scheme {parts.scheme!r})")

    def _proxied(self, uri: str, parts: urllib.parse.SplitResult, spool: Spool) -> dict[str, Path]:
        ours = urllib.parse.urlsplit(self.uri)
        if parts.netloc and (parts.hostname != ours.hostname or parts.port not in (None, origin(self.uri)[2])):
            raise ArtifactLocationRefused(
                f"the MLflow server names {redact(uri)!r}, another server's artifact proxy: only {self.uri} is read"
            )
        top = parts.path.strip("/")
        if not top or bad_segment(top):
            raise ArtifactLocationRefused(f"the MLflow server names {redact(uri)!r}: a path with '..' or '.' parts")
        for rel, full in self._listing(top, spool.budget):
            with self._open("/api/2.0/mlflow-artifacts/artifacts/" + urllib.parse.quote(full)) as response:
                spool.add(rel, self._reader(response))
        return spool.files

    def _listing(self, top: str, budget: Budget) -> list[tuple[str, str]]:
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
                if bad_segment(name):  # a listing may not lead out of the version's directory
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
