"""Single-object GET, HEAD and PUT, and one page of a listing, as one signed HTTP request each: the S3 hot path.

boto3 spends about 2 ms of CPU on every call (parameter models, event hooks, checksums, response parsing),
which is more than a small request costs the server on loopback: a create-only PUT of 300 bytes measured
4-5 ms (2 ms of client CPU) through ``put_object`` and about 1.2 ms (0.17 ms of CPU) through this module and its
HTTP client (``http1``), against the same SeaweedFS. Every registry operation is a chain of
such requests, and under contention eight writers and the server share the cores. So the operations on the
critical path go straight to HTTP here (single objects, and a page of keys when looking for the first free
version), while boto3 still supplies what it is good at: the endpoint, the region and the credential chain
(profiles, instance roles, refreshed session tokens), and every other call (full listings, delete, bucket
checks).

Requests are signed with AWS Signature Version 4 (the payload hash is signed, as botocore does over plain
HTTP); ``tests/registry/test_s3_direct.py`` checks the signature against botocore's own signer byte for byte.
Connection errors and 5xx/throttling answers are retried like boto3's ``standard`` mode (3 attempts).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import html
import os
import random
import re
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.exceptions import NoCredentialsError

from prefect_model_registry.registry.store.s3.http1 import Connection

#: Answers worth another attempt (as botocore's ``standard`` retry mode).
RETRY_STATUS = frozenset({500, 502, 503, 504})
ATTEMPTS = 3
#: A conditional PUT unanswered this long (or four times the usual, if more) is looked at with a HEAD.
STUCK_S = 0.05
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class Answer:
    """What the server said: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def code(self) -> str:
        """The S3 error code from the XML body (the status as text when there is none, as for HEAD)."""
        try:
            found = ET.fromstring(self.body).findtext("Code") if self.body else None
        except ET.ParseError:
            found = None
        return found or str(self.status)


class Unreachable(Exception):
    """The endpoint could not be reached (after the retries)."""


def content_md5(body: bytes) -> str:
    """The ``Content-MD5`` header for ``body``: a server refuses a PUT whose body does not arrive whole."""
    return base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()


@functools.lru_cache(maxsize=8)
def signing_key(secret: str, day: str, region: str) -> bytes:
    """The SigV4 signing key for ``day`` (YYYYMMDD) and ``region``."""
    key = hmac.new(f"AWS4{secret}".encode(), day.encode(), hashlib.sha256).digest()
    for part in (region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(
    method: str,
    host: str,
    path: str,
    headers: dict[str, str],
    payload_sha256: str,
    credentials: Any,
    region: str,
    now: datetime,
    query: str = "",
) -> dict[str, str]:
    """The headers of a SigV4-signed request (``path`` already URI-encoded).

    Args:
        method: HTTP method.
        host: the ``Host`` header (``host[:port]``).
        path: the request path, each segment URI-encoded once, as S3 expects.
        headers: extra headers to sign (conditions, content length).
        payload_sha256: hex SHA-256 of the body.
        credentials: frozen botocore credentials (``access_key``, ``secret_key``, ``token``).
        region: the signing region.
        now: the signing time (UTC).
        query: the canonical query string (see :func:`canonical_query`), empty for none.

    """
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    signed = {k.lower(): v.strip() for k, v in headers.items()}
    signed.update({"host": host, "x-amz-content-sha256": payload_sha256, "x-amz-date": stamp})
    if credentials.token:
        signed["x-amz-security-token"] = credentials.token
    names = sorted(signed)
    canonical = "\n".join(
        [method, path, query, "".join(f"{n}:{signed[n]}\n" for n in names), ";".join(names), payload_sha256]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(signing_key(credentials.secret_key, day, region), to_sign.encode(), hashlib.sha256)
    signed["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature.hexdigest()}"
    )
    return signed


def canonical_query(params: dict[str, str]) -> str:
    """A query string in SigV4's canonical form: sorted, every reserved character percent-encoded."""
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))


_LISTED_KEY = re.compile(rb"<Key>([^<]*)</Key>")


def listed_keys(body: bytes) -> list[str]:
    """The object keys of one ``ListObjectsV2`` answer, in the order listed.

    Only ``Contents`` entries have a ``Key`` element in a listing; a regular expression finds them in a tenth
    of the time of an XML parse (a page is read after every lost claim under contention).

    Raises:
        ValueError: the body is not a listing.

    """
    if b"<ListBucketResult" not in body[:512]:
        raise ValueError("not a ListObjectsV2 answer")
    return [html.unescape(m.decode()) for m in _LISTED_KEY.findall(body)]


class DirectS3:
    """Single-object GET, HEAD and PUT in one bucket (path-style), and listing pages: signed requests.

    Signed with the session's credentials; a key of None addresses the bucket itself (a ``ListObjectsV2`` page).
    """

    def __init__(self, session: Any, client: Any, bucket: str) -> None:
        endpoint = client.meta.endpoint_url.rstrip("/")
        parts = urlsplit(endpoint)
        self._host = parts.netloc
        self._root = f"{parts.path}/{quote(bucket, safe='')}"
        self._region = client.meta.region_name or "us-east-1"
        self._session = session
        config = client.meta.config
        verify = _verify(session)
        self._tls: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._tls = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
        self._address = (parts.hostname or "", parts.port)
        self._timeouts = (float(config.connect_timeout), float(config.read_timeout))
        # One keep-alive connection per thread (a connection is not thread-safe), and a second one for the HEAD
        # that looks at a conditional write the server is slow to answer.
        self._local = threading.local()
        self._put_s = 0.0  # moving average of how long a conditional PUT takes to be answered
        # Whether this server's ETags are the MD5 of the bytes (not so under SSE-KMS): None until a PUT shows it.
        self._md5_etags: bool | None = None

    def _connection(self, slot: str = "conn") -> Connection:
        conn, pid = getattr(self._local, slot, (None, None))
        if conn is None or pid != os.getpid():  # a forked child must not share its parent's socket
            host, port = self._address
            conn = Connection(host, port, self._timeouts[0], self._tls)
            setattr(self._local, slot, (conn, os.getpid()))
        if conn.sock is None:  # new, or closed by a "Connection: close" answer
            conn.connect(self._timeouts[1])
        return conn

    def _exchange(self, method: str, target: str, body: bytes, headers: dict[str, str], slot: str = "conn") -> Answer:
        conn = None
        try:
            conn = self._connection(slot)
            # Headers and body go out in one send; a process killed while sending still leaves the server a
            # short body, which Content-MD5 makes it refuse (SeaweedFS stores a PUT without its body as empty).
            conn.send(method, target, headers, body)
            if slot == "conn" and self._md5_etags and ("if-none-match" in headers or "if-match" in headers):
                lost = self._await_conditional(conn, target, headers)
                if lost is not None:
                    conn.close()  # the request is settled: its answer, when it comes, can only be a refusal
                    return lost
            status, answer_headers, data = conn.answer(method)
        except OSError:
            if conn is not None:
                conn.close()
            raise
        return Answer(status, answer_headers, data)

    def _await_conditional(self, conn: Connection, path: str, headers: dict[str, str]) -> Answer | None:
        """Wait for a conditional PUT's answer; a refusal made certain meanwhile when the server sits on it.

        SeaweedFS serialises conditional writes of one key with a lock whose waiters retry once a second, so of
        writers racing for one key the losers wait a second or more for their 412. Once a HEAD shows the object
        in a state the condition can no longer accept (created with other bytes than ours, or changed away from
        the ETag we require), this request can only be refused: that refusal is returned at once.
        """
        started = time.monotonic()
        wait = max(STUCK_S, 4 * self._put_s)
        ours = f'"{base64.b64decode(headers["content-md5"]).hex()}"'
        while not conn.readable(wait):
            if time.monotonic() - started > self._timeouts[1]:
                return None  # let the read time out as usual
            try:
                head = self._exchange("HEAD", path, b"", self._signed("HEAD", path, {}, EMPTY_SHA256), "side")
            except (OSError, NoCredentialsError):
                head = None
            if head is not None and _refused_now(head, headers, ours):
                return Answer(412, {}, b"<Error><Code>PreconditionFailed</Code></Error>")
            wait = STUCK_S
        self._put_s = 0.8 * self._put_s + 0.2 * (time.monotonic() - started)
        return None

    def request(
        self, method: str, key: str | None, body: bytes = b"", headers: dict[str, str] | None = None, query: str = ""
    ) -> Answer:
        """Send one request for object ``key`` (the full key, prefix included) and return the answer.

        ``key`` None addresses the bucket itself, with ``query`` (canonical, see :func:`canonical_query`).

        Raises:
            Unreachable: no answer after :data:`ATTEMPTS` tries.
            botocore.exceptions.NoCredentialsError: the credential chain found nothing.

        """
        path = self._root if key is None else f"{self._root}/{quote(key, safe='/~')}"
        target = f"{path}?{query}" if query else path
        payload = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        extra = dict(headers or {})
        md5 = hashlib.md5(body, usedforsecurity=False).digest() if method == "PUT" else b""
        if method == "PUT":
            extra["content-length"] = str(len(body))
            extra["content-md5"] = base64.b64encode(md5).decode()
        for attempt in range(ATTEMPTS):
            signed = self._signed(method, path, extra, payload, query)
            try:
                answer = self._exchange(method, target, body, signed)
            except OSError as exc:
                if attempt + 1 == ATTEMPTS:
                    raise Unreachable(f"{type(exc).__name__}: {exc}") from exc
            else:
                if method == "PUT" and answer.status == 200 and self._md5_etags is not False:
                    self._md5_etags = answer.headers.get("etag") == f'"{md5.hex()}"'
                if answer.status not in RETRY_STATUS or attempt + 1 == ATTEMPTS:
                    return answer
            time.sleep(random.uniform(0, 0.05 * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _signed(
        self, method: str, path: str, headers: dict[str, str], payload_sha256: str, query: str = ""
    ) -> dict[str, str]:
        credentials = self._frozen()
        return sign(method, self._host, path, headers, payload_sha256, credentials, self._region, _utcnow(), query)

    def _frozen(self) -> Any:
        credentials = self._session.get_credentials()
        if credentials is None:
            raise NoCredentialsError()
        return credentials.get_frozen_credentials()


def _refused_now(head: Answer, headers: dict[str, str], ours: str) -> bool:
    """Whether a conditional PUT (``headers``) can only be refused, given a HEAD of its object now.

    Objects are whole and never change back to an earlier ETag in this registry (every write holds something
    new: a sequence number, a time), so an object created or changed by another writer stays so.
    """
    if head.status == 200:
        etag = head.headers.get("etag", "")
        if "if-none-match" in headers:
            return etag != ours  # created, and not with our bytes (ours may be landing: wait for the answer)
        return etag not in (headers["if-match"], ours)
    return head.status == 404 and "if-match" in headers and "if-none-match" not in headers


def _verify(session: Any) -> bool | str:
    """TLS verification as boto3 does it: the ``AWS_CA_BUNDLE``/profile CA bundle if one is set, else on."""
    bundle = session._session.get_config_variable("ca_bundle")
    return bundle or True


def _utcnow() -> datetime:
    return datetime.now(UTC)
