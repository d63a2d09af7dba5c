"""The S3 hot path through a maintained client against the hand-written one (issue 30), in one sitting.

The registry's S3 store sends single-object GET, HEAD, PUT (create-only or If-Match) and one page of
``ListObjectsV2`` through ``DirectS3.request(method, key, body, headers, query) -> Answer`` (a SigV4 signer and
an HTTP/1.1 client of its own). This file implements the same contract twice more, here and not in the package:

- ``urllib3``: botocore's ``S3SigV4Auth`` signer over a urllib3 connection pool (botocore's own dependency);
- ``obstore``: the Rust ``object_store`` crate through ``obstore`` (not a dependency of the project:
  ``.venv/bin/pip install obstore``). Its API has no raw requests, so each request is mapped to ``get``,
  ``head``, ``put`` (``mode="create"`` / ``{"e_tag": ...}``) or the first chunk of ``list``.

Both keep what the hand-written client does besides HTTP: Content-MD5 on every PUT (urllib3 only: obstore has no
way to send it), 3 attempts on connection errors and 5xx (obstore: its own retries), and the watch on a
conditional PUT the server sits on (a HEAD after 50 ms; a write that can only be refused is settled at once).

Two measurements, each alternating the clients within every round:

``micro``
    per-call latency (median, p90) and CPU of each request against one SeaweedFS on 127.0.0.1.
``mlflow``
    ``vs_mlflow.py``'s rounds with one registry side per client (each its own prefix, same server, same
    sitting), each row against MLflow's target and against the hand-written client (the rule of issue 30:
    a maintained client replaces it only if every row still meets its target and each row's median is
    within 10% of the hand-written client's).

The registry worker (``_worker_pmr.py``) swaps its store's client when ``PMR_BENCH_S3_CLIENT`` names one
(:func:`swap`); nothing in the package knows about it.

Usage::

    .venv/bin/pip install obstore            # optional: without it the obstore column is left out
    .venv/bin/python benchmarks/s3_clients.py micro [--rounds 6] [--repeats 60]
    .venv/bin/python benchmarks/s3_clients.py mlflow [--scale 2000] [--repeats 10] [--rounds 4]
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import hashlib
import html
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from prefect_model_registry.registry.store.s3.direct import (  # noqa: E402
    ATTEMPTS,
    RETRY_STATUS,
    STUCK_S,
    Answer,
    Unreachable,
    canonical_query,
    listed_keys,
)

#: The environment variable the benchmark worker reads: which client its store uses.
ENV = "PMR_BENCH_S3_CLIENT"
HAND, URLLIB3, OBSTORE = "hand", "urllib3", "obstore"
LABELS = {HAND: "hand-written", URLLIB3: "botocore+urllib3", OBSTORE: "obstore"}
BUCKET = "pmr-clients"
SMALL = os.urandom(300)
MIB = 1024 * 1024
LIST_KEYS = 1000
_LOST = Answer(412, {}, b"<Error><Code>PreconditionFailed</Code></Error>")


def _refused_now(head: Answer, headers: dict[str, str], ours: str) -> bool:
    """Whether a conditional PUT can only be refused, given a HEAD of its object now (as ``DirectS3`` decides)."""
    if head.status == 200:
        etag = head.headers.get("etag", "")
        if "if-none-match" in headers:
            return etag != ours
        return etag not in (headers["if-match"], ours)
    return head.status == 404 and "if-match" in headers and "if-none-match" not in headers


def _frozen(session: Any) -> Any:
    from botocore.exceptions import NoCredentialsError

    credentials = session.get_credentials()
    if credentials is None:
        raise NoCredentialsError()
    return credentials.get_frozen_credentials()


class Urllib3S3:
    """The ``DirectS3`` contract through botocore's ``S3SigV4Auth`` and a urllib3 ``HTTPConnectionPool``.

    Unconditional requests go through the pool's ``urlopen``. A conditional PUT takes a connection from the pool
    itself (``_get_conn``), sends, and watches the socket, so that a write the server sits on can be settled by
    a HEAD meanwhile, as the hand-written client does.
    """

    def __init__(self, session: Any, client: Any, bucket: str) -> None:
        import urllib3

        endpoint = client.meta.endpoint_url.rstrip("/")
        parts = urlsplit(endpoint)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._root = f"{parts.path}/{quote(bucket, safe='')}"
        self._region = client.meta.region_name or "us-east-1"
        self._session = session
        config = client.meta.config
        timeout = urllib3.Timeout(connect=float(config.connect_timeout), read=float(config.read_timeout))
        extra: dict[str, Any] = {}
        if parts.scheme == "https":
            bundle = session._session.get_config_variable("ca_bundle")
            extra = {"ca_certs": bundle} if bundle else {}
        self._read_timeout = float(config.read_timeout)
        self._pool = urllib3.connection_from_url(endpoint, maxsize=4, timeout=timeout, retries=False, **extra)
        self._put_s = 0.0
        self._md5_etags: bool | None = None
        self.errors: tuple[type[BaseException], ...] = (urllib3.exceptions.HTTPError, OSError)

    def request(
        self, method: str, key: str | None, body: bytes = b"", headers: dict[str, str] | None = None, query: str = ""
    ) -> Answer:
        """Send one request for ``key`` (None: the bucket, with ``query``); see ``DirectS3.request``."""
        path = self._root if key is None else f"{self._root}/{quote(key, safe='/~')}"
        target = f"{path}?{query}" if query else path
        extra = dict(headers or {})
        md5 = hashlib.md5(body, usedforsecurity=False).digest() if method == "PUT" else b""
        if method == "PUT":
            extra["content-length"] = str(len(body))
            extra["content-md5"] = base64.b64encode(md5).decode()
        watch = bool(self._md5_etags) and ("if-none-match" in extra or "if-match" in extra)
        for attempt in range(ATTEMPTS):
            signed = self._signed(method, target, extra, body)
            try:
                if watch:
                    answer = self._watched(method, target, body, signed, extra, f'"{md5.hex()}"')
                else:
                    answer = self._exchange(method, target, body, signed)
            except self.errors as exc:
                if attempt + 1 == ATTEMPTS:
                    raise Unreachable(f"{type(exc).__name__}: {exc}") from exc
            else:
                if method == "PUT" and answer.status == 200 and self._md5_etags is not False:
                    self._md5_etags = answer.headers.get("etag") == f'"{md5.hex()}"'
                if answer.status not in RETRY_STATUS or attempt + 1 == ATTEMPTS:
                    return answer
            time.sleep(random.uniform(0, 0.05 * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _signed(self, method: str, target: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=self._origin + target, data=body or None, headers=headers)
        S3SigV4Auth(_frozen(self._session), "s3", self._region).add_auth(request)
        return dict(request.headers.items())

    def _exchange(self, method: str, target: str, body: bytes, headers: dict[str, str]) -> Answer:
        answer = self._pool.urlopen(
            method,
            target,
            body=body or None,
            headers=headers,
            retries=False,
            redirect=False,
            assert_same_host=False,
        )
        return Answer(answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.data)

    def _watched(
        self, method: str, target: str, body: bytes, headers: dict[str, str], conditions: dict[str, str], ours: str
    ) -> Answer:
        import select

        conn = self._pool._get_conn()
        try:
            conn.request(method, target, body=body, headers=headers)
            started, wait = time.monotonic(), max(STUCK_S, 4 * self._put_s)
            sock: Any = getattr(conn, "sock", None)  # open once the request is sent
            while not select.select([sock], [], [], wait)[0]:
                if time.monotonic() - started > self._read_timeout:
                    break
                path = target.split("?", 1)[0]
                try:
                    head = self._exchange("HEAD", path, b"", self._signed("HEAD", path, {}, b""))
                except self.errors:
                    head = None
                if head is not None and _refused_now(head, conditions, ours):
                    conn.close()  # settled: its answer, when it comes, can only be a refusal
                    return _LOST
                wait = STUCK_S
            response = conn.getresponse()
            answer = Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.data)
            self._put_s = 0.8 * self._put_s + 0.2 * (time.monotonic() - started)
            return answer
        except BaseException:
            conn.close()
            raise
        finally:
            self._pool._put_conn(conn)


class ObstoreS3:
    """The ``DirectS3`` contract through ``obstore`` (the Rust ``object_store`` crate).

    A conditional PUT runs in a thread of this object's own pool while the caller watches it: once a HEAD shows
    it can only be refused, the caller has its answer and the PUT is left to finish in its thread (obstore's
    synchronous calls cannot be cancelled; ``put_async`` through an asyncio loop could be, but added 0.34 ms of
    CPU per call against this hand-off's 0.10 ms). Everything else is a plain synchronous call. A listing page
    comes back as a minimal ``ListBucketResult`` body, which is what ``S3Store.keys_after`` reads.
    """

    def __init__(self, session: Any, client: Any, bucket: str) -> None:
        from datetime import timedelta

        from obstore.store import S3Store as ObjectStoreS3

        credentials = _frozen(session)
        config = client.meta.config
        self._store = ObjectStoreS3(
            bucket,
            endpoint=client.meta.endpoint_url.rstrip("/"),
            region=client.meta.region_name or "us-east-1",
            access_key_id=credentials.access_key,
            secret_access_key=credentials.secret_key,
            **({"token": credentials.token} if credentials.token else {}),
            client_options={
                "allow_http": True,
                "connect_timeout": timedelta(seconds=float(config.connect_timeout)),
                "timeout": timedelta(seconds=float(config.read_timeout)),
            },
            retry_config={"max_retries": ATTEMPTS - 1, "retry_timeout": timedelta(seconds=60)},
        )
        self._read_timeout = float(config.read_timeout)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._put_s = 0.0
        self._md5_etags: bool | None = None

    def request(
        self, method: str, key: str | None, body: bytes = b"", headers: dict[str, str] | None = None, query: str = ""
    ) -> Answer:
        """Map one request onto obstore's calls; obstore's errors come back as the S3 answer they stand for."""
        import obstore
        from obstore.exceptions import (
            AlreadyExistsError,
            BaseError,
            NotFoundError,
            PermissionDeniedError,
            PreconditionError,
            UnauthenticatedError,
        )

        conditions = headers or {}
        try:
            if key is None:
                return self._list_page(dict(parse_qsl(query)))
            if method == "GET":
                got = obstore.get(self._store, key)
                return Answer(200, _meta_headers(got.meta), bytes(got.bytes()))
            if method == "HEAD":
                return Answer(200, _meta_headers(obstore.head(self._store, key)), b"")
            if method == "PUT":
                return self._put(key, body, conditions)
        except (AlreadyExistsError, PreconditionError):
            return _LOST
        except (FileNotFoundError, NotFoundError):
            return Answer(404, {}, b"" if method == "HEAD" else b"<Error><Code>NoSuchKey</Code></Error>")
        except (PermissionDeniedError, UnauthenticatedError, PermissionError):
            return Answer(403, {}, b"<Error><Code>AccessDenied</Code></Error>")
        except (BaseError, OSError) as exc:
            raise Unreachable(f"{type(exc).__name__}: {exc}") from exc
        raise ValueError(f"obstore client: no mapping for {method}")

    def _put(self, key: str, body: bytes, conditions: dict[str, str]) -> Answer:
        import obstore

        mode: Any = None
        if "if-none-match" in conditions:
            mode = "create"
        elif "if-match" in conditions:
            mode = {"e_tag": conditions["if-match"]}
        ours = ""
        if mode is not None or self._md5_etags is None:
            ours = f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
        if mode is not None and self._md5_etags:
            return self._watched(key, body, mode, conditions, ours)
        done = obstore.put(self._store, key, body, mode=mode, use_multipart=False)
        etag = done["e_tag"] or ""
        if self._md5_etags is None:
            self._md5_etags = etag == ours
        return Answer(200, {"etag": etag}, b"")

    def _watched(self, key: str, body: bytes, mode: Any, conditions: dict[str, str], ours: str) -> Answer:
        import obstore

        future = self._putter().submit(obstore.put, self._store, key, body, mode=mode, use_multipart=False)
        started, wait = time.monotonic(), max(STUCK_S, 4 * self._put_s)
        while True:
            try:
                done = future.result(timeout=wait)
                break
            except concurrent.futures.TimeoutError:
                if time.monotonic() - started > self._read_timeout:
                    done = future.result()
                    break
                try:
                    head: Answer | None = self.request("HEAD", key)
                except Unreachable:
                    head = None
                if head is not None and _refused_now(head, conditions, ours):
                    return _LOST  # the PUT finishes in its thread; its answer can only be a refusal
                wait = STUCK_S
        self._put_s = 0.8 * self._put_s + 0.2 * (time.monotonic() - started)
        return Answer(200, {"etag": done["e_tag"] or ""}, b"")

    def _putter(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None or self._pool_pid != os.getpid():
            self._pool = concurrent.futures.ThreadPoolExecutor(16, thread_name_prefix="obstore-put")
            self._pool_pid = os.getpid()
        return self._pool

    def _list_page(self, params: dict[str, str]) -> Answer:
        import obstore

        stream = obstore.list(
            self._store,
            params.get("prefix") or None,
            offset=params.get("start-after"),
            chunk_size=int(params.get("max-keys", "1000")),
        )
        page = next(iter(stream), [])
        keys = b"".join(b"<Contents><Key>%s</Key></Contents>" % html.escape(m["path"]).encode() for m in page)
        return Answer(200, {}, b"<ListBucketResult>" + keys + b"</ListBucketResult>")


def _meta_headers(meta: Any) -> dict[str, str]:
    return {
        "etag": meta["e_tag"] or "",
        "last-modified": format_datetime(meta["last_modified"], usegmt=True),
        "content-length": str(meta["size"]),
    }


def make(kind: str, store: Any) -> Any:
    """A client of ``kind`` for ``store`` (a ``S3Store``): its own boto3 session, the store's endpoint and bucket."""
    import boto3

    session = boto3.session.Session()
    if kind == URLLIB3:
        return Urllib3S3(session, store._client, store.bucket)
    if kind == OBSTORE:
        return ObstoreS3(session, store._client, store.bucket)
    raise ValueError(f"unknown S3 client {kind!r} (known: {', '.join(LABELS)})")


def swap(store: Any, kind: str) -> None:
    """Send ``store``'s direct requests through the client ``kind`` (``hand``: leave the store's own)."""
    if kind in ("", HAND):
        return
    if getattr(store, "_direct", None) is None:
        raise RuntimeError(f"{store!r} makes no direct requests: nothing to swap")
    store._direct = make(kind, store)


def available() -> list[str]:
    """The clients this environment can run (obstore only when installed)."""
    try:
        import obstore  # noqa: F401
    except ImportError:
        return [HAND, URLLIB3]
    return [HAND, URLLIB3, OBSTORE]


def _obstore_version() -> str:
    import importlib.metadata as md

    try:
        return md.version("obstore")
    except md.PackageNotFoundError:
        return "not installed"


# --- micro: one request at a time ---------------------------------------------------------------------------


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[8] if len(values) > 1 else values[0]


class Micro:
    """One client's calls for each measured request, with what each needs prepared untimed."""

    def __init__(self, kind: str, client: Any, tag: str) -> None:
        self.kind, self.client, self.tag = kind, client, tag
        self.n = 0
        self.etag = ""

    def key(self, what: str) -> str:
        self.n += 1
        return f"micro/{self.tag}/{self.kind}/{what}/{self.n:08d}"

    def create_only(self) -> Callable[[], Any]:
        key = self.key("create")
        return lambda: self._ok(self.client.request("PUT", key, SMALL, {"if-none-match": "*"}))

    def create_unwatched(self) -> Callable[[], Any]:
        key = self.key("create-unwatched")

        def call() -> None:
            saved, self.client._md5_etags = self.client._md5_etags, False
            try:
                self._ok(self.client.request("PUT", key, SMALL, {"if-none-match": "*"}))
            finally:
                self.client._md5_etags = saved

        return call

    def if_match(self) -> Callable[[], Any]:
        key = f"micro/{self.tag}/{self.kind}/if-match"
        if not self.etag:
            self.etag = self._ok(self.client.request("PUT", key, SMALL)).headers["etag"]

        def call() -> None:
            self.etag = self._ok(self.client.request("PUT", key, os.urandom(300), {"if-match": self.etag})).headers[
                "etag"
            ]

        return call

    def get_small(self) -> Callable[[], Any]:
        return lambda: self._ok(self.client.request("GET", f"micro/{self.tag}/small"))

    def head(self) -> Callable[[], Any]:
        return lambda: self._ok(self.client.request("HEAD", f"micro/{self.tag}/small"))

    def list_page(self) -> Callable[[], Any]:
        query = canonical_query({"list-type": "2", "prefix": f"micro/{self.tag}/list/", "max-keys": str(LIST_KEYS)})

        def call() -> None:
            found = listed_keys(self._ok(self.client.request("GET", None, query=query)).body)
            assert len(found) == LIST_KEYS, len(found)

        return call

    def get_mib(self) -> Callable[[], Any]:
        def call() -> None:
            assert len(self._ok(self.client.request("GET", f"micro/{self.tag}/mib")).body) == MIB

        return call

    def put_mib(self) -> Callable[[], Any]:
        key, payload = self.key("mib"), os.urandom(MIB)
        return lambda: self._ok(self.client.request("PUT", key, payload))

    @staticmethod
    def _ok(answer: Answer) -> Answer:
        if not 200 <= answer.status < 300:
            raise RuntimeError(f"request failed: {answer.status} {answer.body[:200]!r}")
        return answer


#: Row -> (how a call is prepared, calls per client per round as a share of --repeats).
MICRO_ROWS: dict[str, tuple[str, float]] = {
    "create-only PUT 300 B (If-None-Match: *)": ("create_only", 1.0),
    "create-only PUT 300 B, stuck-write watch off": ("create_unwatched", 1.0),
    "If-Match PUT 300 B": ("if_match", 1.0),
    "GET 300 B": ("get_small", 1.0),
    "HEAD": ("head", 1.0),
    f"ListObjectsV2 page of {LIST_KEYS:,} keys (+ parse)": ("list_page", 0.4),
    "GET 1 MiB": ("get_mib", 0.4),
    "PUT 1 MiB": ("put_mib", 0.4),
}


def contract_check(kind: str, env: dict[str, str]) -> None:
    """The registry's store behaves the same through ``kind``: typed errors, ETags, listing pages."""
    from prefect_model_registry.registry.errors import ObjectNotFound, PreconditionFailed
    from prefect_model_registry.registry.store.s3 import S3Store

    os.environ.update(env)
    store = S3Store(BUCKET, f"contract-{kind}")
    swap(store, kind)
    etag = store.put("a", b"one", create_only=True)
    for _ in range(2):  # the second time with the server's ETags known to be MD5s (the watched path)
        try:
            store.put("a", b"two", create_only=True)
            raise AssertionError("a second create-only PUT was accepted")
        except PreconditionFailed as exc:
            assert exc.taken
    assert store.get("a").data == b"one" and store.etag("a") == etag and store.etag("nope") is None
    try:
        store.put("a", b"three", if_match='"0123"')
        raise AssertionError("an If-Match PUT with a wrong ETag was accepted")
    except PreconditionFailed:
        pass
    store.put("a", b"four", if_match=etag)
    assert store.get("a").data == b"four" and store.modified("a") is not None
    try:
        store.get("nope")
        raise AssertionError("a missing object was read")
    except ObjectNotFound:
        pass
    for n in range(5):
        store.put(f"v/{n:03d}", b"x", create_only=True)
    assert store.keys_after("v/", "v/001", 2) == ["v/002", "v/003"]
    assert store.keys_after("v/", None, 100) == [f"v/{n:03d}" for n in range(5)]


def micro(rounds: int, repeats: int) -> None:
    """Per-call latency of each request through each client, alternating the clients within every round."""
    import boto3

    from prefect_model_registry.registry.store.s3 import S3Store
    from tests.seaweed import SeaweedServer

    kinds = available()
    with SeaweedServer() as server:
        server.create_bucket(BUCKET)
        os.environ.update(server.env())
        for kind in kinds:
            contract_check(kind, server.env())
        store = S3Store(BUCKET)
        clients: dict[str, Any] = {HAND: store._direct}
        clients.update({kind: make(kind, store) for kind in kinds if kind != HAND})
        tag = "m"
        seed = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")
        seed.put_object(Bucket=BUCKET, Key=f"micro/{tag}/small", Body=SMALL)
        seed.put_object(Bucket=BUCKET, Key=f"micro/{tag}/mib", Body=os.urandom(MIB))
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: clients[HAND].request("PUT", f"micro/{tag}/list/{n:06d}", b"k"), range(LIST_KEYS)))
        benches = {kind: Micro(kind, client, tag) for kind, client in clients.items()}
        for bench in benches.values():  # warm: connections open, ETag kind known, first-call costs paid
            for method, _share in MICRO_ROWS.values():
                getattr(bench, method)()()
        wall: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        for r in range(rounds):
            order = kinds[r % len(kinds) :] + kinds[: r % len(kinds)]
            print(f"round {r + 1}/{rounds} (order: {', '.join(LABELS[k] for k in order)})", flush=True)
            for row, (method, share) in MICRO_ROWS.items():
                calls = max(5, int(repeats * share))
                for kind in order:
                    prepared = [getattr(benches[kind], method)() for _ in range(calls)]
                    c0 = time.process_time()
                    for call in prepared:
                        t0 = time.perf_counter()
                        call()
                        wall.setdefault((row, kind), []).append((time.perf_counter() - t0) * 1000)
                    cpu.setdefault((row, kind), []).append((time.process_time() - c0) * 1000 / calls)
    print(f"\n{rounds} rounds, clients alternating within each round (order rotated every round); one SeaweedFS")
    print(f"machine: {os.cpu_count()} cores; obstore {_obstore_version()}")
    head = " | ".join(f"{LABELS[k]} ms median (p90)" for k in kinds)
    ratios = " | ".join(f"{LABELS[k]} / hand" for k in kinds if k != HAND)
    print(f"\n| request | {head} | {ratios} |")
    print("|---|" + "---|" * (2 * len(kinds) - 1))
    for row in MICRO_ROWS:
        medians = {k: statistics.median(wall[row, k]) for k in kinds}
        cells = " | ".join(f"{medians[k]:.3f} ({_p90(wall[row, k]):.3f})" for k in kinds)
        rel = " | ".join(f"{medians[k] / medians[HAND]:.2f}" for k in kinds if k != HAND)
        print(f"| {row} | {cells} | {rel} |")
    print("\nclient CPU per call (ms, median of the per-round means; the whole process, obstore's threads too)")
    print(f"| request | {' | '.join(LABELS[k] for k in kinds)} |")
    print("|---|" + "---|" * len(kinds))
    for row in MICRO_ROWS:
        print(f"| {row} | {' | '.join(f'{statistics.median(cpu[row, k]):.3f}' for k in kinds)} |")


# --- mlflow: vs_mlflow.py's rows, one registry side per client ----------------------------------------------


def mlflow(scale: int, repeats: int, rounds: int) -> bool:
    """``vs_mlflow.py``'s rounds with one registry side per client; True when a maintained client qualifies."""
    from benchmarks import floors
    from benchmarks import vs_mlflow as vs
    from benchmarks.mlflow_env import mlflow_python
    from tests.seaweed import SeaweedServer

    kinds = available()
    mlflow_py = mlflow_python()
    with SeaweedServer() as server:
        server.create_bucket(vs.BUCKET)
        tmp = server.dir / "mlflow"
        tmp.mkdir()
        env = {**os.environ, **server.env(), "MLFLOW_S3_ENDPOINT_URL": server.endpoint, "PMR_ACTOR": "benchmark"}
        env["PYTHONPATH"] = str(ROOT)
        db, artifacts = tmp / "mlflow.db", f"s3://{vs.BUCKET}/mlflow"
        mlf = vs.Side(
            "MLflow",
            [str(mlflow_py), str(HERE / "_worker_mlflow.py"), str(db), artifacts],
            env,
            f"from mlflow import MlflowClient; u='sqlite:///{db}'; "
            "MlflowClient(tracking_uri=u, registry_uri=u).get_model_version_by_alias('big', 'champion')",
            f"from mlflow import MlflowClient; u='sqlite:///{db}'; c=MlflowClient(tracking_uri=u, registry_uri=u); "
            "t=None\nwhile True:\n p=c.search_model_versions(\"name='big'\", max_results=10000, page_token=t)"
            "\n t=p.token\n if not t: break",
        )
        ours: dict[str, Any] = {}
        for kind in kinds:
            prefix = f"s3://{vs.BUCKET}/pmr-{kind}"
            opened = (
                "from prefect_model_registry.registry import Registry; from benchmarks.s3_clients import swap; "
                f"r = Registry.open('{prefix}'); swap(r.store, '{kind}'); r"
            )
            ours[kind] = vs.Side(
                LABELS[kind],
                [sys.executable, str(HERE / "_worker_pmr.py"), prefix],
                {**env, ENV: kind},
                f"{opened}.resolve('models:/big@champion')",
                f"{opened}.versions('big')",
            )
        sides = [mlf, *ours.values()]
        workers = {s.label: s.start() for s in sides}
        try:
            for side in sides:
                for name, n in (("small", vs.SMALL), ("big", scale)):
                    done = workers[side.label].call("setup", name=name, versions=n)
                    print(f"{side.label}: seeded {name} to {n:,} versions at {n / done['seed_s']:.0f}/s", flush=True)
            floor: dict[str, list[float]] = {}
            for r in range(rounds):
                print(f"round {r + 1}/{rounds}...", flush=True)
                vs.run_round(r, sides, workers, repeats, scale, floor)
        finally:
            for w in workers.values():
                w.close()
    print(f"\nmachine: {vs.machine()}; obstore {_obstore_version()}")
    print(
        f"{rounds} rounds, {repeats} calls per operation per round; MLflow and one registry side per client, "
        "alternating operation by operation (order reversed every other round); one SeaweedFS"
    )
    return _mlflow_table(mlf, ours, scale, floor, floors)


def _mlflow_table(mlf: Any, ours: dict[str, Any], scale: int, floor: dict[str, list[float]], floors: Any) -> bool:
    from benchmarks import vs_mlflow as vs

    targets = dict(vs.TARGETS)
    targets[f"list all versions of a model with {scale:,} versions"] = (False, 0.5)
    kinds = list(ours)
    hand = ours[HAND]
    within = {k: True for k in kinds}
    meets = {k: True for k in kinds}
    print(f"\n| operation (median; ms unless noted) | MLflow | {' | '.join(LABELS[k] for k in kinds)} | target |")
    print("|---|---|" + "---|" * len(kinds) + "---|")
    rows = [op for op in hand.samples if not op.startswith(("resolve @production", "contention errors"))]
    detail = []
    for op in rows:
        theirs = statistics.median(mlf.samples[op])
        higher_better, target = targets.get(op, (False, None))
        cells, notes = [], []
        base = statistics.median(hand.samples[op])
        for k in kinds:
            mine = statistics.median(ours[k].samples[op])
            ratio = mine / theirs if theirs else float("inf")
            good = True
            if target is not None:
                good = ratio >= target if higher_better else ratio <= target
                meets[k] &= good
            vs_hand = mine / base if base else float("inf")
            worse = vs_hand < 0.9 if higher_better else vs_hand > 1.1
            if k != HAND:
                within[k] &= not worse
            cell = f"{mine:,.1f} ({ratio:.2f}x{'' if target is None else ', met' if good else ', NOT met'})"
            if k != HAND:
                cell += f" [{vs_hand:.2f} of hand]"
            cells.append(cell)
            notes.append(f"{LABELS[k]}={mine:,.2f}")
        shown = f"{'>=' if higher_better else '<='} {target}" if target is not None else ""
        print(f"| {op} | {theirs:,.1f} | {' | '.join(cells)} | {shown} |")
        detail.append((op, notes))
    print("\n(each cell: median (ratio to MLflow, target met) [ratio to the hand-written client's median])")
    for k in kinds:
        side = ours[k]
        flat = statistics.median(side.samples[f"resolve @production, {scale:,} versions"]) / statistics.median(
            side.samples["resolve @production, 10 versions"]
        )
        errors = sum(side.samples["contention errors + gaps"])
        meets[k] &= flat <= 1.1 and errors == 0
        print(f"{LABELS[k]}: resolve @production at {scale:,} / {vs.SMALL} versions {flat:.2f}; errors+gaps {errors:g}")
    print("\nper-round values of the one-value-per-round rows:")
    for op in (vs.SEQUENTIAL_RATE, vs.CONTENTION):
        shown = "; ".join(f"{LABELS[k]} {', '.join(f'{v:.2f}' for v in ours[k].samples[op])}" for k in kinds)
        print(f"  {op}: MLflow {', '.join(f'{v:.2f}' for v in mlf.samples[op])}; {shown}")
    if floor:
        print("\nbare S3 floors (hand-written client), this sitting:")
        for name, values in floor.items():
            print(f"  {name}: {statistics.median(values):.2f}")
    print()
    qualifies = False
    for k in kinds:
        if k == HAND:
            print(f"{LABELS[k]}: every target met: {'yes' if meets[k] else 'NO'}")
            continue
        ok = meets[k] and within[k]
        qualifies |= ok
        print(
            f"{LABELS[k]}: every target met: {'yes' if meets[k] else 'NO'}; every row within 10% of the "
            f"hand-written client: {'yes' if within[k] else 'NO'} -> {'replaces it' if ok else 'does not qualify'}"
        )
    return qualifies


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    m = sub.add_parser("micro", help="per-request latency through each client")
    m.add_argument("--rounds", type=int, default=6)
    m.add_argument("--repeats", type=int, default=60, help="calls per request per client per round")
    f = sub.add_parser("mlflow", help="vs_mlflow.py's rows with one registry side per client")
    f.add_argument("--scale", type=int, default=2000)
    f.add_argument("--repeats", type=int, default=10)
    f.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args(argv)
    if args.mode == "micro":
        micro(args.rounds, args.repeats)
        return 0
    qualifies = mlflow(args.scale, args.repeats, args.rounds)
    print("\na maintained client qualifies" if qualifies else "\nthe hand-written client stays")
    return 0


if __name__ == "__main__":
    sys.exit(main())
