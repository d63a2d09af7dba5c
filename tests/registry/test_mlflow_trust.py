"""The MLflow importer trusts the server for metadata only: each attack a hostile tracking server can try.

The hostile server is a real HTTP server on 127.0.0.1 (``http.server``) that answers MLflow's REST API as each
test chooses; file reads are seen through an audit hook on ``open``, S3 requests by a loopback endpoint that
records them, redirected credentials by a second loopback server.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer

from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.errors import ArtifactLocationRefused, InvalidMetadata, StoreUnavailable
from prefect_model_registry.registry.interop.mlflow_import import import_mlflow
from prefect_model_registry.registry.interop.mlflow_reach import redact
from tests.conftest import snapshot
from tests.registry.test_cli import pmr
from tests.seaweed import _free_port

MLMODEL = b"flavors:\n  python_function:\n    python_version: 3.11.7\n"

# -- who opened what -----------------------------------------------------------------------------------------
_WATCHED: list[Path] = []
_TOUCHED: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in ("open", "os.scandir", "os.listdir") or not args or not _WATCHED:
        return
    target = args[0]
    if isinstance(target, bytes):
        target = target.decode(errors="replace")
    if isinstance(target, str | os.PathLike):
        path = os.path.abspath(os.fspath(target))
        if any(path == str(w) or path.startswith(f"{w}{os.sep}") for w in _WATCHED):
            _TOUCHED.append(f"{event} {path}")


sys.addaudithook(_audit)  # for the whole process (hooks cannot be removed): it only looks at _WATCHED


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    """A directory of a would-be model plus a secret; every open or listing of it in this process is recorded."""
    home = tmp_path / "home-of-the-importer"
    home.mkdir()
    (home / "MLmodel").write_bytes(MLMODEL)
    (home / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY----- canary")
    real = home.resolve()
    _WATCHED.append(real)
    _TOUCHED.clear()
    try:
        yield real
    finally:
        _WATCHED.remove(real)
        _TOUCHED.clear()


# -- a hostile MLflow server ---------------------------------------------------------------------------------
class Server:
    """A loopback HTTP server that records every request; ``answer`` decides the response."""

    def __init__(self, answer: Callable[[Server, str, dict[str, list[str]]], tuple[int, dict[str, str], bytes]]):
        self.answer = answer
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path with query, headers)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append((self.path, dict(self.headers.items())))
                parts = urllib.parse.urlsplit(self.path)
                status, headers, body = outer.answer(outer, parts.path, urllib.parse.parse_qs(parts.query))
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def saw(self, text: str) -> bool:
        """Whether any request's path mentioned ``text``."""
        return any(text in path for path, _ in self.requests)


def _json(data: Any, status: int = 200) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(data).encode()


class FakeMlflow:
    """Model ``m``, one version per entry of ``uris`` (its download URI); proxied files in ``artifacts``.

    ``listings`` overrides the listing of a directory, ``redirects`` answers a path with a 302.
    """

    def __init__(self) -> None:
        self.uris: dict[str, str] = {}
        self.artifacts: dict[str, bytes] = {}  # server path ("1/artifacts/MLmodel") -> bytes
        self.listings: dict[str, list[dict[str, Any]]] = {}
        self.redirects: dict[str, str] = {}
        self.endless: str | None = None  # every directory under it holds another one
        self.server = Server(self._answer)
        self.url = self.server.url

    def proxied(self, version: str, files: dict[str, bytes]) -> None:
        """Version ``version`` with ``files`` behind the server's artifact proxy."""
        self.uris[version] = f"mlflow-artifacts:/{version}/artifacts"
        self.artifacts.update({f"{version}/artifacts/{rel}": data for rel, data in files.items()})

    def _answer(self, server: Server, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        if path in self.redirects:
            return 302, {"Location": self.redirects[path]}, b""
        path = path.removeprefix("/moved")  # where a test's same-origin redirect leads
        api = "/api/2.0/mlflow/"
        if path == f"{api}registered-models/search":
            return _json({"registered_models": [{"name": "m"}]})
        if path == f"{api}registered-models/get":
            return _json({"registered_model": {"name": "m"}})
        if path == f"{api}model-versions/search":
            versions = [
                {"name": "m", "version": v, "status": "READY", "current_stage": "None", "creation_timestamp": int(v)}
                for v in self.uris
            ]
            return _json({"model_versions": versions})
        if path == f"{api}model-versions/get-download-uri":
            return _json({"artifact_uri": self.uris[query["version"][0]]})
        listing = "/api/2.0/mlflow-artifacts/artifacts"
        if path == listing:
            top = query["path"][0]
            if top in self.listings:
                return _json({"files": self.listings[top]})
            if self.endless and top.startswith(self.endless):
                return _json({"files": [{"path": "d", "is_dir": True}]})
            children: dict[str, dict[str, Any]] = {}
            for key, data in self.artifacts.items():
                if key.startswith(f"{top}/"):
                    head, _, rest = key[len(top) + 1 :].partition("/")
                    children[head] = {"path": head, "is_dir": True} if rest else {"path": head, "file_size": len(data)}
            return _json({"files": list(children.values())})
        if path.startswith(f"{listing}/"):
            key = urllib.parse.unquote(path[len(listing) + 1 :])
            if key in self.artifacts:
                return 200, {"Content-Type": "application/octet-stream"}, self.artifacts[key]
        return _json({"error_code": "RESOURCE_DOES_NOT_EXIST"}, 404)


@pytest.fixture
def mlflow() -> Iterator[FakeMlflow]:
    fake = FakeMlflow()
    try:
        yield fake
    finally:
        fake.server.close()


@pytest.fixture
def location(tmp_path: Path) -> str:
    return str(tmp_path / "registry")


@pytest.fixture
def reg(location: str) -> Registry:
    return Registry.open(location)


def _zip_names(reg: Registry, uri: str) -> dict[str, bytes]:
    _, data = reg.load_bytes(uri)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


# -- local paths ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["file", "bare"])
def test_a_local_download_uri_is_refused_by_default_and_nothing_is_read(
    mlflow: FakeMlflow, reg: Registry, canary: Path, form: str
) -> None:
    mlflow.uris["1"] = canary.as_uri() if form == "file" else str(canary)
    with pytest.raises(ArtifactLocationRefused, match="--allow-artifact-root") as info:
        import_mlflow(reg, mlflow.url)
    assert _TOUCHED == []  # not opened, not even listed
    assert not list(reg.store.list(""))  # nothing registered
    assert "id_ed25519" not in str(info.value)


def test_an_allowed_root_that_does_not_hold_the_location_refuses_it_too(
    mlflow: FakeMlflow, reg: Registry, canary: Path, tmp_path: Path
) -> None:
    allowed = tmp_path / "home"  # a string prefix of the canary's directory, "home-of-the-importer"
    (allowed / "1").mkdir(parents=True)
    (allowed / "1" / "MLmodel").write_bytes(MLMODEL)
    (allowed / "2").mkdir()
    (allowed / "2" / "stolen").symlink_to(canary / "id_ed25519")  # a file under the root that resolves outside
    (allowed / "3").symlink_to(canary, target_is_directory=True)  # a directory that does
    attempts = {
        "prefix": str(canary),
        "dot-dot": f"{allowed.as_uri()}/1/../../{canary.name}",
        "file symlink": (allowed / "2").as_uri(),
        "directory symlink": (allowed / "3").as_uri(),
    }
    for how, uri in attempts.items():
        mlflow.uris = {"1": uri}
        with pytest.raises(ArtifactLocationRefused) as info:
            import_mlflow(reg, mlflow.url, allowed_roots=[str(allowed), "s3://bucket/prefix"])
        assert "outside" in str(info.value), how
        assert _TOUCHED == [], how
        assert not list(reg.store.list("")), how


def test_a_local_location_under_an_allowed_root_is_imported(
    mlflow: FakeMlflow, reg: Registry, canary: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (canary / "sub").mkdir()
    (canary / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    (canary / "inside").symlink_to(canary / "MLmodel")  # a symlink that stays inside the root is fine
    mlflow.uris["1"] = canary.as_uri()
    report = import_mlflow(reg, mlflow.url, allowed_roots=[canary.parent])  # a PathLike root
    assert report["m"].registered == {"1": 1}
    assert _TOUCHED  # the audit hook does see the reads the tests above assert are absent
    files = _zip_names(reg, "models:/m/1")
    assert files == {
        "MLmodel": MLMODEL,
        "id_ed25519": (canary / "id_ed25519").read_bytes(),
        "inside": MLMODEL,
        "sub/weights.bin": b"\x00\x01",
    }
    # the CLI option, as a file:// root, on a second registry
    location = str(tmp_path / "other")
    code, out, err = pmr(
        capsys, "--registry", location, "--json", "import-mlflow", "--tracking-uri", mlflow.url,
        "--allow-artifact-root", canary.as_uri(),
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["m"]["registered"] == {"1": 1}
    third = str(tmp_path / "third")
    code, _, err = pmr(capsys, "--registry", third, "import-mlflow", "--tracking-uri", mlflow.url)
    assert code == 1 and "--allow-artifact-root" in err and not list(Registry.open(third).store.list(""))


# -- S3 ------------------------------------------------------------------------------------------------------
EMPTY_LISTING = (
    b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<Name>bucket</Name><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>"
    b"</ListBucketResult>"
)


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A loopback S3 endpoint that records requests and lists every bucket as empty."""
    endpoint = Server(lambda _s, _p, _q: (200, {"Content-Type": "application/xml"}, EMPTY_LISTING))
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", endpoint.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "importer-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "importer-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    try:
        yield endpoint
    finally:
        endpoint.close()


def test_an_s3_download_uri_is_refused_unless_an_allowed_root_holds_it(
    mlflow: FakeMlflow, reg: Registry, s3_endpoint: Server
) -> None:
    mlflow.uris["1"] = "s3://bucket/models/1"
    with pytest.raises(ArtifactLocationRefused, match="--allow-artifact-root"):
        import_mlflow(reg, mlflow.url)
    refused = {
        "s3://bucket/model": "s3://bucket/models/1",  # a key prefix is compared at a '/' boundary
        "s3://bucket-2/models": "s3://bucket/models/1",  # the bucket exactly
        "s3://bucke": "s3://bucket/models/1",
        "s3://bucket/models": "s3://bucket/models/../secrets/1",  # no '..' segments
    }
    for root, uri in refused.items():
        mlflow.uris = {"1": uri}
        with pytest.raises(ArtifactLocationRefused):
            import_mlflow(reg, mlflow.url, allowed_roots=[root])
    assert s3_endpoint.requests == []  # no S3 request was made with the importer's credentials
    assert not list(reg.store.list(""))
    with pytest.raises(InvalidMetadata):
        import_mlflow(reg, mlflow.url, allowed_roots=["s3://bucket/a/../b"])

    mlflow.uris = {"1": "s3://bucket/models/1"}
    report = import_mlflow(reg, mlflow.url, allowed_roots=["s3://bucket/models/"])
    assert report["m"].registered == {"1": 1}
    assert s3_endpoint.saw("list-type=2")  # the recorder sees the requests asserted absent above


# -- credentials ---------------------------------------------------------------------------------------------
def test_credentials_do_not_follow_a_redirect_to_another_origin(
    mlflow: FakeMlflow, reg: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Server(lambda _s, _p, _q: _json({"registered_models": []}))
    try:
        search = "/api/2.0/mlflow/registered-models/search"
        mlflow.redirects[search] = f"{other.url}{search}"
        # urllib's own redirect handling, as the importer used it: the token goes to the other port
        request = urllib.request.Request(f"{mlflow.url}{search}", headers={"Authorization": "Bearer tok-123"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        assert other.requests[-1][1].get("Authorization") == "Bearer tok-123"
        other.requests.clear()

        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-123")
        with pytest.raises(StoreUnavailable, match="another origin") as info:
            import_mlflow(reg, mlflow.url)
        assert all("Authorization" not in headers for _, headers in other.requests)
        assert other.requests == []  # refused outright: the other server is not asked anything
        assert "tok-123" not in str(info.value)

        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")  # basic auth from the URI: the same
        with pytest.raises(StoreUnavailable, match="another origin") as info:
            import_mlflow(reg, mlflow.url.replace("//", "//alice:pw-456@"))
        assert other.requests == [] and "pw-456" not in str(info.value)
        assert not list(reg.store.list(""))
    finally:
        other.close()


def test_a_redirect_within_the_server_keeps_the_credentials(
    mlflow: FakeMlflow, reg: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow.proxied("1", {"MLmodel": MLMODEL})
    get = "/api/2.0/mlflow/registered-models/get"
    mlflow.redirects[get] = f"{mlflow.url}/moved{get}"  # same scheme, host and port
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-123")
    assert import_mlflow(reg, mlflow.url)["m"].registered == {"1": 1}
    followed = [h for p, h in mlflow.server.requests if p.startswith(f"/moved{get}")]
    assert followed and all(h.get("Authorization") == "Bearer tok-123" for h in followed)


def test_credentials_in_the_tracking_uri_are_basic_auth_and_never_shown(
    mlflow: FakeMlflow, reg: Registry, location: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _free_port()  # nothing listens there
    for uri in (
        f"http://alice:hunter2-secret@127.0.0.1:{port}",
        f"http://alice:hunter2/secret@127.0.0.1:{port}",  # an unencoded '/' that urlsplit takes for the path
        f"http://alice:hunter2-secret@127.0.0.1:{port}/?x=1",
    ):
        with pytest.raises(StoreUnavailable) as info:
            import_mlflow(reg, uri)
        assert "hunter2" not in str(info.value) and "alice:" not in str(info.value), str(info.value)
        code, out, err = pmr(capsys, "--registry", location, "import-mlflow", "--tracking-uri", uri)
        assert code == 1 and "hunter2" not in out + err and "alice:" not in out + err
    for uri in (f"alice:hunter2-secret@127.0.0.1:{port}", f"ftp://alice:hunter2-secret@127.0.0.1:{port}"):
        with pytest.raises(InvalidMetadata) as bad:
            import_mlflow(reg, uri)
        assert "hunter2" not in str(bad.value)
    assert redact("s3://AKIA:key@bucket/x") == "s3://bucket/x"

    # a reachable server gets them as basic auth; the registry records the origin without them
    mlflow.proxied("1", {"MLmodel": MLMODEL})
    report = import_mlflow(reg, mlflow.url.replace("//", "//alice:hunter2%40x@"))
    assert report["m"].registered == {"1": 1}
    expected = "Basic " + base64.b64encode(b"alice:hunter2@x").decode()
    assert {h.get("Authorization") for _, h in mlflow.server.requests} == {expected}
    assert reg.get_version("m", 1).lineage.copied_from == f"mlflow+{mlflow.url}#models:/m/1"
    assert not any(b"hunter2" in data for data in snapshot(reg).values())


# -- the proxy's listing -------------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", ["../../../etc/passwd", "/etc/passwd", "a/../../x", "%2e%2e/x", "..", "a\\..\\x"])
def test_a_listing_that_leads_out_of_the_version_is_refused(mlflow: FakeMlflow, reg: Registry, entry: str) -> None:
    mlflow.proxied("1", {"MLmodel": MLMODEL})
    mlflow.listings["1/artifacts"] = [{"path": "MLmodel", "file_size": 10}, {"path": entry, "file_size": 10}]
    with pytest.raises(ArtifactLocationRefused, match="outside the version"):
        import_mlflow(reg, mlflow.url)
    assert not mlflow.server.saw("/api/2.0/mlflow-artifacts/artifacts/")  # no file fetched at all
    assert not list(reg.store.list(""))


@pytest.mark.parametrize(
    "uri",
    [
        "mlflow-artifacts:/1/../../x",
        "mlflow-artifacts:/",
        "mlflow-artifacts://evil.example:80/1/artifacts",
        "mlflow-artifacts://127.0.0.1:port/1/artifacts",
        "mlflow-artifacts://[::1/1/artifacts",
    ],
)
def test_a_proxied_download_uri_outside_the_server_or_with_dot_dot_is_refused(
    mlflow: FakeMlflow, reg: Registry, uri: str
) -> None:
    mlflow.uris["1"] = uri
    with pytest.raises(ArtifactLocationRefused):
        import_mlflow(reg, mlflow.url)
    assert not mlflow.server.saw("mlflow-artifacts")


# -- bounds --------------------------------------------------------------------------------------------------
def test_a_version_over_the_caps_is_skipped_and_named_and_the_others_imported(
    mlflow: FakeMlflow,
    reg: Registry,
    location: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PMR_MLFLOW_MAX_VERSION_BYTES", "4000")
    monkeypatch.setenv("PMR_MLFLOW_MAX_VERSION_FILES", "5")
    mlflow.proxied("1", {"MLmodel": MLMODEL, "w.bin": b"1" * 1000})
    mlflow.proxied("2", {"MLmodel": MLMODEL, "w.bin": b"2" * 5000})  # too big, by the listing's sizes
    mlflow.proxied("3", {"MLmodel": MLMODEL, "w.bin": b"3" * 5000})  # too big, though the listing says 10 bytes
    mlflow.listings["3/artifacts"] = [{"path": "MLmodel", "file_size": 10}, {"path": "w.bin", "file_size": 10}]
    mlflow.proxied("4", {"MLmodel": MLMODEL, **{f"d/f{i}": b"x" for i in range(6)}})  # too many files
    mlflow.proxied("5", {"MLmodel": MLMODEL, "w.bin": b"5" * 3000})
    report = import_mlflow(reg, mlflow.url)["m"]
    assert report.registered == {"1": 1, "5": 2}
    assert set(report.skipped) == {"2", "3", "4"}
    assert "PMR_MLFLOW_MAX_VERSION_BYTES" in report.skipped["2"] and "ArtifactTooLarge" in report.skipped["3"]
    assert "PMR_MLFLOW_MAX_VERSION_FILES" in report.skipped["4"]
    assert not mlflow.server.saw("artifacts/2/artifacts/w.bin")  # refused from the listing, before reading
    assert _zip_names(reg, "models:/m/2")["w.bin"] == b"5" * 3000

    code, out, err = pmr(capsys, "--registry", location, "--json", "import-mlflow", "--tracking-uri", mlflow.url)
    assert code == 0, err
    again = json.loads(out)["m"]
    assert again["existing"] == {"1": 1, "5": 2} and set(again["skipped"]) == {"2", "3", "4"}
    assert "MLflow v2 skipped" in err


def test_an_endless_nesting_of_directories_ends_at_the_entry_cap(
    mlflow: FakeMlflow, reg: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMR_MLFLOW_MAX_VERSION_FILES", "1500")  # deeper than Python's recursion limit
    mlflow.uris["1"] = "mlflow-artifacts:/1/artifacts"
    mlflow.endless = "1/artifacts"
    mlflow.proxied("2", {"MLmodel": MLMODEL})
    report = import_mlflow(reg, mlflow.url)["m"]
    assert report.registered == {"2": 1} and "PMR_MLFLOW_MAX_VERSION_FILES" in report.skipped["1"]


def test_a_version_the_registry_refuses_is_skipped_and_the_others_imported(mlflow: FakeMlflow, reg: Registry) -> None:
    evil = sio.dumps(FunctionTransformer(func=eval))
    flavor = b"flavors:\n  sklearn:\n    pickled_model: model.skops\n    serialization_format: skops\n"
    mlflow.proxied("1", {"MLmodel": MLMODEL})
    mlflow.proxied("2", {"MLmodel": flavor, "model.skops": evil})
    mlflow.proxied("3", {"MLmodel": MLMODEL})
    report = import_mlflow(reg, mlflow.url)["m"]
    assert report.registered == {"1": 1, "3": 2}
    assert list(report.skipped) == ["2"] and "builtins.eval" in report.skipped["2"]  # UntrustedArtifact's reason
    assert reg.latest_version("m") == 2


def test_caps_and_roots_are_checked_before_anything_runs(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("gs://bucket/x", "s3://", "file://fileserver/share"):
        with pytest.raises(InvalidMetadata, match="--allow-artifact-root"):
            import_mlflow(reg, "http://127.0.0.1:9", allowed_roots=[bad])
    monkeypatch.setenv("PMR_MLFLOW_MAX_VERSION_BYTES", "2GiB")
    with pytest.raises(InvalidMetadata, match="PMR_MLFLOW_MAX_VERSION_BYTES"):
        import_mlflow(reg, "http://127.0.0.1:9")
