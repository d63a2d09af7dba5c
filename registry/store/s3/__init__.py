"""The S3 backend (boto3), for AWS or any S3-compatible server.

The endpoint, region and credentials come from boto3's standard chain (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, profiles, instance roles …). Path-style addressing is used so that local servers
such as SeaweedFS or MinIO work without DNS tricks. Every conditional write (manifests, events, claims) is one
PUT of the whole object: conditional multipart completion is not atomic on some servers. Only content-addressed
blobs above ``PMR_MULTIPART_THRESHOLD`` go in parts (``transfer``): they are immutable, so a plain completion is
safe. Every PUT carries its Content-MD5, so a body cut short by a
dying writer is refused rather than stored truncated (SeaweedFS stores a PUT whose body never came as empty).

Single-object reads and writes (the critical path of every operation) go out as one signed HTTP request each
(``s3_direct``), a quarter of boto3's CPU per call; listing, deleting and bucket checks use the
boto3 client. ``PMR_S3_DIRECT=0`` sends everything through boto3, and so does a store given its own client.
"""

from __future__ import annotations

import builtins
import io
import os
import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.utils import get_environ_proxies

from prefect_model_registry.registry.errors import (
    BucketNotFound,
    ObjectNotFound,
    PreconditionFailed,
    StoreAccessDenied,
    StoreError,
    StoreUnavailable,
)
from prefect_model_registry.registry.settings import settings
from prefect_model_registry.registry.store.base import (
    CHUNK,
    ObjectStore,
    Progress,
    StoredObject,
    check_key,
    check_unchanged,
)
from prefect_model_registry.registry.store.s3 import transfer
from prefect_model_registry.registry.store.s3.direct import (
    Answer,
    DirectS3,
    Unreachable,
    canonical_query,
    content_md5,
    listed_keys,
)

_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "403",
    "InvalidToken",
    "ExpiredToken",
}
_CONFLICT = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_MISSING = {"NoSuchKey", "404", "NotFound"}
_EXISTS = {"PreconditionFailed", "412"}
_REDIRECT = {"PermanentRedirect", "TemporaryRedirect", "AuthorizationHeaderMalformed", "301", "307"}


class S3Store(ObjectStore):
    """Objects in one bucket under an optional key prefix."""

    def __init__(self, bucket: str, prefix: str = "", *, client: Any | None = None) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.uri = f"s3://{bucket}/{prefix}".rstrip("/")
        self._direct: DirectS3 | None = None
        if client is not None:  # a client of the caller's own (the fault tests): every call goes through it
            self._client = client
            return
        # A session of its own: boto3's default session caches credentials for the life of the process.
        session = boto3.session.Session()
        self._client = session.client(
            "s3",
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
        )
        # Behind a proxy, boto3's proxy handling is kept for everything.
        proxied = self._client.meta.config.proxies or get_environ_proxies(self._client.meta.endpoint_url)
        if not proxied and settings().s3_direct:
            self._direct = DirectS3(session, self._client, bucket)

    def _raise(
        self, exc: Exception, key: str | None, *, conditional: bool = False, create_only: bool = False
    ) -> NoReturn:
        if isinstance(exc, NoCredentialsError):
            raise StoreAccessDenied(f"no S3 credentials found for {self.uri}") from exc
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            self._refuse(code, key, str(exc), exc, conditional, create_only)
        if isinstance(exc, BotoCoreError | Unreachable):
            raise StoreUnavailable(f"S3 endpoint for {self.uri} unreachable: {exc}") from exc
        raise exc

    def _refuse(
        self,
        code: str,
        key: str | None,
        detail: str,
        cause: Exception | None,
        conditional: bool,
        create_only: bool = False,
    ) -> NoReturn:
        """Raise the typed error for S3 error ``code`` (the same from boto3 and from a direct request)."""
        where = f"{self.uri}/{key}" if key else self.uri
        if code == "NoSuchBucket":
            raise BucketNotFound(f"bucket {self.bucket!r} does not exist") from cause
        if code in _DENIED:
            raise StoreAccessDenied(f"S3 refused the credentials for {where} ({code})") from cause
        if code in _CONFLICT or (conditional and code in _MISSING):
            taken = create_only and code in _EXISTS  # a 409 asks for a retry: the object may not exist
            raise PreconditionFailed(f"conditional write to {where} lost ({code})", taken=taken) from cause
        if code in _MISSING:
            raise ObjectNotFound(f"no object {where}") from cause
        raise StoreError(f"S3 error on {where}: {code} {detail}") from cause

    def _send(
        self,
        method: str,
        key: str | None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        query: str = "",
    ) -> Answer | None:
        """One direct request, when this store makes them: its answer if it succeeded (or found nothing, for HEAD).

        ``key`` None addresses the bucket itself, with ``query`` (a listing). None when boto3 must make the
        call: direct requests are off, or a region redirect just turned them off. Any other failure raises the
        typed error.
        """
        if self._direct is None:
            return None
        target = None if key is None else self.prefix + check_key(key)
        try:
            answer = self._direct.request(method, target, body, headers, query)
        except (NoCredentialsError, Unreachable) as exc:
            self._raise(exc, key)
        if 200 <= answer.status < 300:
            return answer
        code = answer.code
        if answer.status in (301, 307) or code in _REDIRECT:
            # The bucket lives in another region than the one configured: boto3 follows that, so from now on
            # this store leaves every call to it.
            self._direct = None
            return None
        if method == "HEAD" and code in _MISSING:
            return answer
        conditions = headers or {}
        create_only = "if-none-match" in conditions
        self._refuse(code, key, f"(HTTP {answer.status})", None, bool(conditions), create_only)

    def check(self) -> None:
        """Fail with a typed error if the bucket is missing, the credentials wrong or the endpoint down."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise BucketNotFound(f"bucket {self.bucket!r} does not exist") from exc
            self._raise(exc, None)
        except BotoCoreError as exc:
            self._raise(exc, None)

    def get(self, key: str) -> StoredObject:
        """Read an object."""
        answer = self._send("GET", key)
        if answer is not None:
            return StoredObject(answer.body, answer.headers["etag"])
        full = self.prefix + check_key(key)
        try:
            resp = self._client.get_object(Bucket=self.bucket, Key=full)
            return StoredObject(resp["Body"].read(), resp["ETag"])
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, key)

    def _head(self, key: str) -> dict[str, Any] | None:
        """The ``ETag`` and ``LastModified`` of ``key``, or None when it is missing."""
        answer = self._send("HEAD", key)
        if answer is not None:
            if answer.status >= 300:  # missing
                return None
            modified = parsedate_to_datetime(answer.headers["last-modified"])
            length = int(answer.headers.get("content-length", "0"))
            return {"ETag": answer.headers["etag"], "LastModified": modified, "ContentLength": length}
        try:
            return self._client.head_object(Bucket=self.bucket, Key=self.prefix + check_key(key))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING:
                return None
            self._raise(exc, key)
        except BotoCoreError as exc:
            self._raise(exc, key)

    def exists(self, key: str) -> bool:
        """Tell whether an object exists."""
        return self._head(key) is not None

    def etag(self, key: str) -> str | None:
        """The object's ETag from a ``head_object`` (no body), or None when it is missing."""
        head = self._head(key)
        return None if head is None else head["ETag"]

    def size(self, key: str) -> int | None:
        """The object's ``ContentLength`` from a HEAD, or None when it is missing."""
        head = self._head(key)
        return None if head is None else int(head["ContentLength"])

    def modified(self, key: str) -> float | None:
        """The object's ``LastModified`` (None when it is missing or cannot be read)."""
        try:
            head = self._head(key)
        except StoreError:
            return None
        return None if head is None else head["LastModified"].timestamp()

    def put(self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None) -> str:
        """Write an object whole with one PUT; see :meth:`ObjectStore.put`."""
        headers = {"if-none-match": "*"} if create_only else {}
        if if_match is not None:
            headers["if-match"] = if_match
        answer = self._send("PUT", key, bytes(data), headers)
        if answer is not None:
            return answer.headers["etag"]
        full = self.prefix + check_key(key)
        # Content-MD5: a body cut short by a dying process is refused, never stored truncated or empty.
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": full, "Body": data, "ContentMD5": content_md5(data)}
        if create_only:
            kwargs["IfNoneMatch"] = "*"
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        try:
            return self._client.put_object(**kwargs)["ETag"]
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, key, conditional=create_only or if_match is not None, create_only=create_only)

    def list(self, prefix: str) -> Iterator[str]:
        """Yield keys under ``prefix`` in lexicographic order (S3 lists in that order)."""
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", ()):
                    yield obj["Key"][len(self.prefix) :]
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, prefix)

    def keys_after(self, prefix: str, after: str | None, limit: int) -> builtins.list[str] | None:
        """One page of ``ListObjectsV2`` from just after ``after``: see :meth:`ObjectStore.keys_after`."""
        params = {"list-type": "2", "prefix": self.prefix + prefix, "max-keys": str(limit)}
        if after is not None:
            params["start-after"] = self.prefix + check_key(after)
        answer = self._send("GET", None, query=canonical_query(params))
        if answer is not None:
            try:
                return [key[len(self.prefix) :] for key in listed_keys(answer.body)]
            except ValueError as exc:  # not a listing (or not UTF-8)
                raise StoreError(f"S3 sent an unreadable listing of {self.uri}/{prefix}") from exc
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": params["prefix"], "MaxKeys": limit}
        if after is not None:
            kwargs["StartAfter"] = params["start-after"]
        try:
            page = self._client.list_objects_v2(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, prefix)
        return [obj["Key"][len(self.prefix) :] for obj in page.get("Contents", ())]

    def list_children(self, prefix: str) -> builtins.list[str]:
        """Distinct next segments below ``prefix``, using S3's delimiter listing."""
        paginator = self._client.get_paginator("list_objects_v2")
        children: list[str] = []
        base = self.prefix + prefix
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base, Delimiter="/"):
                children.extend(p["Prefix"][len(base) :].rstrip("/") for p in page.get("CommonPrefixes", ()))
                children.extend(o["Key"][len(base) :] for o in page.get("Contents", ()))
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, prefix)
        return sorted(set(children))

    def delete(self, key: str) -> None:
        """Delete an object; missing is fine."""
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self.prefix + check_key(key))
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, key)

    # -- large objects (see transfer) ------------------------------------------------------------------------
    def put_file(
        self,
        key: str,
        path: Path,
        *,
        sha256: str | None = None,
        unchanged: Callable[[], bool] | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Upload a file: one PUT below the multipart threshold, else a resumable multipart upload.

        See :meth:`ObjectStore.put_file` for ``sha256`` and ``unchanged``: a multipart upload checks them
        before it is completed (and is aborted when they fail), a single PUT before it is sent.
        """
        size = path.stat().st_size
        plan = transfer.Plan.now(size)
        if size < plan.threshold:  # small enough to hold: one request, checked by its Content-MD5
            data = path.read_bytes()
            check_unchanged(path, data, sha256, unchanged)
            self.put(key, data)
            if progress is not None:
                progress(len(data))
            return
        full = self.prefix + check_key(key)
        for attempt in range(2):
            try:
                self.last_parts_sent = transfer.upload(
                    self._client, self.bucket, full, path, size, sha256=sha256, unchanged=unchanged, progress=progress
                )
                return
            except ClientError as exc:
                # Another process resuming the same upload completed (or repair aborted) it under us: the blob is
                # content-addressed, so if it is there whole it is ours; else start over once.
                if str(exc.response.get("Error", {}).get("Code", "")) != "NoSuchUpload":
                    self._raise(exc, key)
                if self.size(key) == size:
                    return
                if attempt:
                    self._raise(exc, key)
            except BotoCoreError as exc:
                self._raise(exc, key)

    #: Parts the last multipart upload of this store sent (resumed parts are not sent): for tests and benchmarks.
    last_parts_sent: int = 0

    def get_file(self, key: str, path: Path, *, progress: Progress | None = None) -> None:
        """Download into ``path``: boto3's managed download (parallel ranged GETs above the threshold)."""
        plan = transfer.Plan.now(self.size(key) or 0)
        try:
            with open(path, "r+b") as out:
                self._client.download_fileobj(
                    self.bucket, self.prefix + check_key(key), out, Config=plan.boto(), Callback=progress
                )
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, key)

    def read_chunks(self, key: str) -> Iterator[bytes]:
        """Stream the object in chunks (one GET)."""
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self.prefix + check_key(key))["Body"]
            yield from body.iter_chunks(CHUNK)
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, key)

    def open_read(self, key: str) -> BinaryIO:
        """A buffered reader of the object by ranged GETs, pinned to its current ETag."""
        head = self._head(key)
        if head is None:
            raise ObjectNotFound(f"no object {self.uri}/{key}")
        raw = transfer.RangedReader(
            self._client, self.bucket, self.prefix + key, int(head["ContentLength"]), str(head["ETag"])
        )
        return io.BufferedReader(raw, buffer_size=256 * 1024)

    def copy_within(self, source: ObjectStore, source_key: str, key: str, *, progress: Progress | None = None) -> bool:
        """A server-side copy (boto3's managed copy) when ``source`` is a bucket on this store's endpoint.

        The copy names the source object's ETag (``CopySourceIfMatch``): what lands is that very object, or
        nothing. The caller checks the result (see ``core.transfer``).
        """
        if not isinstance(source, S3Store) or source._client.meta.endpoint_url != self._client.meta.endpoint_url:
            return False
        head = source._head(source_key)
        if head is None:
            raise ObjectNotFound(f"no object {source.uri}/{source_key}")
        # One CopyObject up to S3's 5 GiB limit: the copy keeps the source's ETag on servers that copy it whole,
        # so it can be checked without reading it back (parts copied one by one get ETags of their own).
        plan = transfer.Plan.now(int(head["ContentLength"])).for_copy()
        origin = {"Bucket": source.bucket, "Key": source.prefix + check_key(source_key)}
        try:
            self._client.copy(
                origin,
                self.bucket,
                self.prefix + check_key(key),
                ExtraArgs={"CopySourceIfMatch": head["ETag"]},
                Config=plan.boto(),
                Callback=progress,
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _DENIED:
                return False  # these credentials cannot read the source bucket: the bytes are streamed instead
            self._raise(exc, key)
        except BotoCoreError as exc:
            self._raise(exc, key)
        return True

    def unfinished_uploads(self) -> builtins.list[tuple[str, float]]:
        """Multipart uploads under this store's prefix never completed: ``<key>#<upload id>`` and age (s)."""
        found: list[tuple[str, float]] = []
        now = time.time()
        try:
            for page in self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            ):
                for up in page.get("Uploads", ()):
                    found.append(
                        (f"{up['Key'][len(self.prefix) :]}#{up['UploadId']}", now - up["Initiated"].timestamp())
                    )
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, None)
        return sorted(found)

    def abort_upload(self, name: str) -> None:
        """Abort the unfinished upload ``<key>#<upload id>`` (gone already is fine)."""
        key, _, upload_id = name.rpartition("#")
        try:
            self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.prefix + check_key(key), UploadId=upload_id
            )
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) != "NoSuchUpload":
                self._raise(exc, key)
        except BotoCoreError as exc:
            self._raise(exc, key)
