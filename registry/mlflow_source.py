"""Read an MLflow model registry over MLflow's REST API: no MLflow package needed in this environment.

MLflow's own pins (sqlalchemy, fastapi, pandas…) need not agree with Prefect's, so ``pmr import-mlflow`` talks
to a tracking server (``mlflow server``, Databricks, any MLflow-compatible endpoint) with the standard library.
A sqlite or file store is served for the import with ``mlflow server --backend-store-uri sqlite:///mlflow.db``.

Authentication follows MLflow's variables: ``MLFLOW_TRACKING_TOKEN`` (bearer) or ``MLFLOW_TRACKING_USERNAME``
and ``MLFLOW_TRACKING_PASSWORD`` (basic). Artifacts come through the server's proxy (``mlflow-artifacts:/``),
from S3 (``s3://``, with ``MLFLOW_S3_ENDPOINT_URL`` for S3-compatible stores) or from a local path.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from registry.errors import InvalidMetadata, ObjectNotFound, StoreUnavailable

#: Seconds to wait for one request to the tracking server.
TIMEOUT_S = 60.0


class MlflowSource:
    """A read-only view of one MLflow tracking server's model registry."""

    def __init__(self, tracking_uri: str) -> None:
        parsed = urllib.parse.urlparse(tracking_uri)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidMetadata(
                f"tracking URI must be http(s)://host[:port] of an MLflow server, not {tracking_uri!r} "
                "(serve a sqlite or file store with `mlflow server --backend-store-uri ...`)"
            )
        self.uri = tracking_uri.rstrip("/")

    # -- HTTP -----------------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        if token:
            return {"Authorization": f"Bearer {token}"}
        user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
        if user and password:
            return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
        return {}

    def _get(self, endpoint: str, **params: Any) -> bytes:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        url = f"{self.uri}{endpoint}" + (f"?{query}" if query else "")
        request = urllib.request.Request(url, headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise ObjectNotFound(f"{url}: not found on the MLflow server") from None
            raise StoreUnavailable(f"MLflow server answered {exc.code} to {url}: {exc.read()[:200]!r}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise StoreUnavailable(f"cannot reach the MLflow server at {self.uri}: {exc}") from None

    def _json(self, endpoint: str, **params: Any) -> dict[str, Any]:
        try:
            data = json.loads(self._get(f"/api/2.0/mlflow/{endpoint}", **params))
        except ValueError:
            raise StoreUnavailable(f"{self.uri} did not answer {endpoint} with JSON: is it an MLflow server?") from None
        return data if isinstance(data, dict) else {}

    def _pages(self, endpoint: str, field: str, **params: Any) -> Iterator[dict[str, Any]]:
        token = None
        while True:
            page = self._json(endpoint, max_results=200, page_token=token, **params)
            yield from page.get(field, [])
            token = page.get("next_page_token")
            if not token:
                return

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
        """Where the version's model files are (``mlflow-artifacts:/…``, ``s3://…``, a path)."""
        return str(self._json("model-versions/get-download-uri", name=name, version=version)["artifact_uri"])

    # -- artifacts ------------------------------------------------------------------------------------
    def files(self, uri: str) -> dict[str, bytes]:
        """Every file under the artifact directory ``uri``, by relative path."""
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme == "mlflow-artifacts":
            return self._proxied(parsed.path.lstrip("/"))
        if parsed.scheme == "s3":
            return _s3_files(parsed.netloc, parsed.path.lstrip("/"))
        if parsed.scheme in ("", "file"):
            root = Path(urllib.parse.unquote(parsed.path))
            return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        raise InvalidMetadata(f"cannot read MLflow artifacts at {uri!r} (scheme {parsed.scheme!r})")

    def _proxied(self, path: str, prefix: str = "") -> dict[str, bytes]:
        listing = json.loads(self._get("/api/2.0/mlflow-artifacts/artifacts", path=path))
        out: dict[str, bytes] = {}
        for entry in listing.get("files", []):
            rel = f"{prefix}{entry['path']}"
            full = f"{path}/{entry['path']}"
            if entry.get("is_dir"):
                out.update(self._proxied(full, f"{rel}/"))
            else:
                out[rel] = self._get("/api/2.0/mlflow-artifacts/artifacts/" + urllib.parse.quote(full))
        return out


def _s3_files(bucket: str, prefix: str) -> dict[str, bytes]:
    import boto3  # the S3 backend's dependency already

    client = boto3.client("s3", endpoint_url=os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None)
    out: dict[str, bytes] = {}
    base = prefix.rstrip("/") + "/"
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base):
        for obj in page.get("Contents", []):
            out[obj["Key"][len(base) :]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out
