"""The S3 backend's direct requests: signed as botocore signs them, typed errors as boto3's, on a real server."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from prefect_model_registry.registry.errors import (
    BucketNotFound,
    ObjectNotFound,
    PreconditionFailed,
    StoreAccessDenied,
    StoreUnavailable,
)
from prefect_model_registry.registry.store.s3 import S3Store, http1
from prefect_model_registry.registry.store.s3.direct import EMPTY_SHA256, Answer, canonical_query, listed_keys, sign
from tests.conftest import BUCKET

WHEN = datetime(2026, 11, 23, 12, 34, 56, tzinfo=UTC)


def _botocore_headers(method: str, url: str, headers: dict[str, str], body: bytes, creds: Credentials):
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    signer = botocore.auth.S3SigV4Auth(creds.get_frozen_credentials(), "s3", "eu-west-3")
    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: WHEN.replace(tzinfo=None)
    try:
        signer.add_auth(request)
    finally:
        botocore.auth.get_current_datetime = original
    return request.headers


@pytest.mark.parametrize(
    ("method", "key", "headers", "body", "token"),
    [
        ("GET", "models/m/versions/00001.json", {}, b"", None),
        ("PUT", "a/m@prod=1+x/events/0000000001.json", {"if-none-match": "*"}, b'{"x": 1}', None),
        ("PUT", "blobs/sha256/ab/abc", {"if-match": '"0123abcd"'}, os.urandom(4096), "session-token/+="),
        ("HEAD", "k.v~1", {}, b"", "tok"),
    ],
)
def test_the_signature_is_botocores(method: str, key: str, headers: dict[str, str], body: bytes, token) -> None:
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    path = f"/bucket-1/{quote(key, safe='/~')}"
    sent = dict(headers)
    if method == "PUT":
        sent["content-length"] = str(len(body))
    ours = sign(method, "127.0.0.1:8333", path, sent, hashlib.sha256(body).hexdigest(), creds, "eu-west-3", WHEN)
    theirs = _botocore_headers(method, f"http://127.0.0.1:8333{path}", sent, body, creds)
    assert ours["authorization"] == theirs["Authorization"]
    assert ours["x-amz-date"] == theirs["X-Amz-Date"]
    assert ours["x-amz-content-sha256"] == theirs["X-Amz-Content-SHA256"]
    assert ours.get("x-amz-security-token") == theirs.get("X-Amz-Security-Token")


def test_a_listing_is_signed_as_botocore_signs_it() -> None:
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None)
    params = {
        "list-type": "2",
        "prefix": "p/models/m@x=1+2~/versions/",
        "max-keys": "100",
        "start-after": "p/models/m@x=1+2~/versions/0000000009.json",
    }
    query = canonical_query(params)
    ours = sign("GET", "127.0.0.1:8333", "/bucket-1", {}, EMPTY_SHA256, creds, "eu-west-3", WHEN, query)
    theirs = _botocore_headers("GET", f"http://127.0.0.1:8333/bucket-1?{query}", {}, b"", creds)
    assert ours["authorization"] == theirs["Authorization"]


def test_listed_keys_are_read_from_contents_only() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Name>b</Name><Prefix>p/</Prefix><Contents><Key>p/a&amp;b</Key><ETag>&#34;e&#34;</ETag></Contents>"
        b"<Contents><Key>p/c</Key></Contents><KeyCount>2</KeyCount><StartAfter>p/0</StartAfter></ListBucketResult>"
    )
    assert listed_keys(body) == ["p/a&b", "p/c"]
    with pytest.raises(ValueError):
        listed_keys(b"<Error><Code>NoSuchKey</Code><Key>p/a</Key></Error>")


@pytest.fixture
def direct(s3_server) -> S3Store:
    store = S3Store(BUCKET, f"direct-{uuid.uuid4().hex}")
    assert store._direct is not None
    calls: list[str] = []
    store._client.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    store.boto3_calls = calls  # type: ignore[attr-defined]
    return store


def test_single_object_calls_bypass_boto3_and_keep_their_semantics(direct: S3Store) -> None:
    key = "m/odd@name=1+2/v.json"
    etag = direct.put(key, b"one", create_only=True)
    assert direct.get(key).data == b"one"
    assert direct.get(key).etag == etag == direct.etag(key)
    assert direct.exists(key) and not direct.exists("m/missing")
    assert direct.etag("m/missing") is None
    modified = direct.modified(key)
    assert modified is not None and abs(modified - time.time()) < 120
    assert direct.modified("m/missing") is None
    with pytest.raises(PreconditionFailed):
        direct.put(key, b"two", create_only=True)
    with pytest.raises(PreconditionFailed):
        direct.put(key, b"two", if_match='"not-the-etag"')
    with pytest.raises(PreconditionFailed):
        direct.put("m/missing", b"two", if_match=etag)
    new = direct.put(key, b"two", if_match=etag)
    assert new != etag and direct.get(key).data == b"two"
    with pytest.raises(ObjectNotFound):
        direct.get("m/missing")
    direct.put("m/empty", b"")
    assert direct.get("m/empty").data == b""
    big = os.urandom(3 << 20)
    direct.put("m/big", big)
    assert direct.get("m/big").data == big
    assert direct.boto3_calls == []  # type: ignore[attr-defined]
    assert list(direct.list("m/")) == ["m/big", "m/empty", key]  # listing still goes through boto3
    assert direct.boto3_calls == ["ListObjectsV2"]  # type: ignore[attr-defined]


def test_direct_errors_are_typed(s3_server, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BucketNotFound):
        S3Store("no-such-bucket-here", "p").get("k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(StoreAccessDenied):
        S3Store(BUCKET, "p").put("k", b"x")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(StoreUnavailable):
        S3Store(BUCKET, "p").get("k")


def test_the_switch_sends_everything_through_boto3(s3_server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMR_S3_DIRECT", "0")
    store = S3Store(BUCKET, f"boto-{uuid.uuid4().hex}")
    assert store._direct is None
    store.put("k", b"x", create_only=True)
    assert store.get("k").data == b"x"


def test_a_forked_child_opens_its_own_connection(direct: S3Store) -> None:
    direct.put("k", b"parent")  # the parent's keep-alive connection is open now
    pid = os.fork()
    if pid == 0:  # child: reusing the parent's socket would interleave two conversations on it
        try:
            ok = all(direct.get("k").data == b"parent" for _ in range(20))
        finally:
            os._exit(0 if ok else 1)
    for _ in range(20):
        assert direct.get("k").data == b"parent"
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_connection_the_server_dropped_is_reopened(direct: S3Store) -> None:
    direct.put("k", b"x")
    old = direct._direct._local.conn[0].sock  # type: ignore[union-attr]
    old.shutdown(socket.SHUT_RDWR)  # as an idle keep-alive connection closed by the server looks
    assert direct.get("k").data == b"x"
    assert direct._direct._local.conn[0].sock is not old  # type: ignore[union-attr]


def test_a_put_whose_body_never_arrives_stores_nothing(direct: S3Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # A writer killed after its headers went out and before its body did: SeaweedFS stored such a request as an
    # empty object, and an empty event is a log nobody can read or append to again.
    body = b'{"event": "registered"}'
    real_send = http1.Connection.send

    def dies_before_the_body(conn: http1.Connection, method: str, target: str, headers: Any, data: bytes) -> None:
        if data == body:
            real_send(conn, method, target, headers, b"")
            assert conn.sock is not None
            conn.sock.close()
            raise BrokenPipeError("writer died")
        real_send(conn, method, target, headers, data)

    monkeypatch.setattr(http1.Connection, "send", dies_before_the_body)
    for create_only in (False, True):
        with pytest.raises(StoreUnavailable):
            direct.put(f"log/{create_only}", body, create_only=create_only)
    monkeypatch.undo()
    time.sleep(0.2)  # the server has seen each connection close
    assert not direct.exists("log/False") and not direct.exists("log/True")
    direct.put("log/True", body, create_only=True)  # the number is still free
    assert direct.get("log/True").data == body


@pytest.mark.parametrize("via", ["direct", "boto3"])
def test_a_page_of_keys_after_a_key(s3_server, monkeypatch: pytest.MonkeyPatch, via: str) -> None:
    if via == "boto3":
        monkeypatch.setenv("PMR_S3_DIRECT", "0")
    store = S3Store(BUCKET, f"page-{uuid.uuid4().hex}")
    assert (store._direct is None) == (via == "boto3")
    for n in (1, 2, 3, 5):
        store.put(f"m@x=1/v/{n:04d}.json", b"x")
    store.put("m@x=1/w", b"x")
    assert store.keys_after("m@x=1/v/", None, 10) == [f"m@x=1/v/{n:04d}.json" for n in (1, 2, 3, 5)]
    assert store.keys_after("m@x=1/v/", "m@x=1/v/0001.json", 2) == ["m@x=1/v/0002.json", "m@x=1/v/0003.json"]
    assert store.keys_after("m@x=1/v/", "m@x=1/v/0005.json", 10) == []
    assert store.keys_after("nothing/here/", None, 10) == []


def test_a_listing_of_a_missing_bucket_is_a_typed_error(s3_server) -> None:
    with pytest.raises(BucketNotFound):
        S3Store(f"missing-{uuid.uuid4().hex[:8]}", "p").keys_after("a/", None, 5)


def test_boto3_puts_carry_their_md5(s3_server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMR_S3_DIRECT", "0")
    store = S3Store(BUCKET, f"md5-{uuid.uuid4().hex}")
    sent: list[bytes | None] = []
    store._client.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: sent.append(request.headers.get("Content-MD5"))
    )
    store.put("k", b"whole", create_only=True)
    assert sent == [base64.b64encode(hashlib.md5(b"whole").digest())]


def test_credentials_come_from_botos_chain(s3_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A profile file, not the environment: the direct requests sign with what boto3's chain resolves.
    key, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    path = tmp_path / "credentials"
    path.write_text(f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    store = S3Store(BUCKET, f"profile-{uuid.uuid4().hex}")
    store.put("k", b"x")
    assert store.get("k").data == b"x"
    assert boto3.session.Session().get_credentials().access_key == key


def test_a_region_redirect_hands_the_store_to_boto3(direct: S3Store) -> None:
    direct.put("k", b"x")
    redirect = Answer(301, {}, b"<Error><Code>PermanentRedirect</Code></Error>")
    direct._direct.request = lambda *a, **k: redirect  # type: ignore[union-attr,method-assign]
    assert direct.get("k").data == b"x"  # boto3 made the call
    assert direct._direct is None
    assert direct.boto3_calls == ["GetObject"]  # type: ignore[attr-defined]


def test_a_proxy_keeps_every_call_in_boto3(s3_server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.delenv("no_proxy", raising=False)
    assert S3Store(BUCKET, "p")._direct is None


class _Scripted:
    """A loopback HTTP server answering from a script: faults a real S3 server cannot give on demand."""

    def __init__(self, script: list[Any], tls: Any = None, default: Any = (200, b"", {"ETag": '"ok"'})) -> None:
        import http.server
        import threading

        self.script, self.seen, self.late = list(script), [], threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                outer.seen.append((self.command, self.path, "authorization" in self.headers))
                step = outer.script.pop(0) if outer.script else default
                if step == "drop":  # the connection dies before an answer
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if step[0] == "late":  # answered after a while (SeaweedFS's per-key lock), noted in ``late``
                    time.sleep(step[1])
                    outer.late.set()
                    step = step[2]
                status, body, headers = step
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_HEAD = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls is not None:  # a trustme certificate: serve HTTPS
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.configure_cert(context)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _scripted_store(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> S3Store:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    store = S3Store("b", "p")
    assert store._direct is not None
    return store


SLOW = (503, b"<Error><Code>SlowDown</Code></Error>", {})


def test_throttling_and_dropped_connections_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with _Scripted([SLOW, "drop", (200, b"", {"ETag": '"e1"'})]) as endpoint:
        store = _scripted_store(monkeypatch, endpoint)
        assert store.put("k", b"x") == '"e1"'
        assert store.get("k").etag == '"ok"'  # the connection opened after the drop is kept alive and reused


def test_a_fault_that_outlasts_the_retries_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect_model_registry.registry.errors import StoreError

    scripted = _Scripted([SLOW, SLOW, SLOW])
    with scripted as endpoint:
        store = _scripted_store(monkeypatch, endpoint)
        with pytest.raises(StoreError, match="SlowDown"):
            store.get("k")
    assert len(scripted.seen) == 3 and all(signed for _, _, signed in scripted.seen)


def test_a_closed_connection_is_reopened_and_409_is_not_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    conflict = (409, b"<Error><Code>ConditionalRequestConflict</Code></Error>", {"Connection": "close"})
    exists = (412, b"<Error><Code>PreconditionFailed</Code></Error>", {})
    with _Scripted([conflict, exists]) as endpoint:
        store = _scripted_store(monkeypatch, endpoint)
        with pytest.raises(PreconditionFailed) as retry:
            store.put("k", b"x", create_only=True)
        with pytest.raises(PreconditionFailed) as taken:
            store.put("k", b"x", create_only=True)
    assert not retry.value.taken and taken.value.taken


def _md5_etag(body: bytes) -> dict[str, str]:
    return {"ETag": f'"{hashlib.md5(body).hexdigest()}"'}


EXISTS = (412, b"<Error><Code>PreconditionFailed</Code></Error>", {})


def test_a_conditional_put_the_server_sits_on_is_refused_once_a_head_shows_another_writer_won(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # SeaweedFS makes the losers of a race for one key wait a second or more on its lock for their 412.
    learn = (200, b"", _md5_etag(b"first"))  # this server's ETags are MD5s: a HEAD can tell whose bytes landed
    scripted = _Scripted([learn, ("late", 3.0, EXISTS), (200, b"", _md5_etag(b"theirs"))])
    with scripted as endpoint:
        store = _scripted_store(monkeypatch, endpoint)
        store.put("first", b"first")
        with pytest.raises(PreconditionFailed) as lost:
            store.put("v/7", b"ours", create_only=True)
        assert lost.value.taken
        assert not scripted.late.is_set()  # refused without waiting for the server's answer
        assert [m for m, _, _ in scripted.seen] == ["PUT", "PUT", "HEAD"]
        assert store.get("k").etag == '"ok"'  # a new connection serves the next call


@pytest.mark.parametrize(
    ("put", "head", "answer"),
    [
        ({"create_only": True}, (200, b"", _md5_etag(b"ours")), (200, b"", _md5_etag(b"ours"))),  # ours may be landing
        ({"create_only": True}, (404, b"", {}), EXISTS),  # nobody's yet
        ({"if_match": '"e1"'}, (200, b"", {"ETag": '"e1"'}), (200, b"", _md5_etag(b"ours"))),  # unchanged yet
    ],
    ids=["our-bytes", "missing", "unchanged"],
)
def test_a_conditional_put_waits_for_its_answer_while_a_head_cannot_settle_it(
    monkeypatch: pytest.MonkeyPatch, put: dict[str, Any], head: Any, answer: Any
) -> None:
    scripted = _Scripted([(200, b"", _md5_etag(b"first")), ("late", 0.3, answer)], default=head)
    with scripted as endpoint:
        store = _scripted_store(monkeypatch, endpoint)
        store.put("first", b"first")
        if answer[0] == 200:
            assert store.put("v/7", b"ours", **put) == answer[2]["ETag"]
        else:
            with pytest.raises(PreconditionFailed):
                store.put("v/7", b"ours", **put)
        assert scripted.late.is_set()
        assert "HEAD" in [m for m, _, _ in scripted.seen]


def test_without_md5_etags_a_slow_conditional_put_is_simply_awaited(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under SSE-KMS an ETag is not the MD5 of the bytes, so a HEAD cannot tell our object from another's.
    scripted = _Scripted([(200, b"", {"ETag": '"kms-1"'}), ("late", 0.3, EXISTS)], default=(200, b"", {"ETag": '"x"'}))
    with scripted as endpoint:
        store = _scripted_store(monkeypatch, endpoint)
        store.put("first", b"first")
        with pytest.raises(PreconditionFailed):
            store.put("v/7", b"ours", create_only=True)
    assert scripted.late.is_set() and [m for m, _, _ in scripted.seen] == ["PUT", "PUT"]


def test_https_verifies_the_server_against_the_configured_ca(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import trustme

    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    served = _Scripted([(200, b"", {"ETag": '"tls"'})], tls=ca.issue_cert("127.0.0.1"))
    with served as endpoint:
        monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))
        store = _scripted_store(monkeypatch, endpoint)
        assert endpoint.startswith("https://")
        assert store.put("k", b"x") == '"tls"'
        assert served.seen == [("PUT", "/b/p/k", True)]
        monkeypatch.delenv("AWS_CA_BUNDLE")  # the system trust store does not know this CA
        with pytest.raises(StoreUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            _scripted_store(monkeypatch, endpoint).get("k")
    assert len(served.seen) == 1  # nothing was sent over the connection that failed verification
