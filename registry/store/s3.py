"""The S3 backend (boto3), for AWS or any S3-compatible server.

The endpoint, region and credentials come from boto3's standard chain (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, profiles, instance roles …). Path-style addressing is used so that local servers
such as SeaweedFS or MinIO work without DNS tricks. Every write is one ``put_object``: conditional
multipart completion is not atomic on some servers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, NoReturn

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from registry.errors import (
    BucketNotFound,
    ObjectNotFound,
    PreconditionFailed,
    StoreAccessDenied,
    StoreError,
    StoreUnavailable,
)
from registry.store.base import ObjectStore, StoredObject, check_key

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


class S3Store(ObjectStore):
    """Objects in one bucket under an optional key prefix."""

    def __init__(self, bucket: str, prefix: str = "", *, client: Any | None = None) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.uri = f"s3://{bucket}/{prefix}".rstrip("/")
        # A session of its own: boto3's default session caches credentials for the life of the process.
        self._client = client or boto3.session.Session().client(
            "s3",
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
        )

    def _raise(self, exc: Exception, key: str | None, *, conditional: bool = False) -> NoReturn:
        where = f"{self.uri}/{key}" if key else self.uri
        if isinstance(exc, NoCredentialsError):
            raise StoreAccessDenied(f"no S3 credentials found for {self.uri}") from exc
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket":
                raise BucketNotFound(f"bucket {self.bucket!r} does not exist") from exc
            if code in _DENIED:
                raise StoreAccessDenied(f"S3 refused the credentials for {where} ({code})") from exc
            if code in _CONFLICT or (conditional and code in _MISSING):
                raise PreconditionFailed(f"conditional write to {where} lost ({code})") from exc
            if code in _MISSING:
                raise ObjectNotFound(f"no object {where}") from exc
            raise StoreError(f"S3 error on {where}: {code} {exc}") from exc
        if isinstance(exc, BotoCoreError):
            raise StoreUnavailable(f"S3 endpoint for {self.uri} unreachable: {exc}") from exc
        raise exc

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
        full = self.prefix + check_key(key)
        try:
            resp = self._client.get_object(Bucket=self.bucket, Key=full)
            return StoredObject(resp["Body"].read(), resp["ETag"])
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, key)

    def _head(self, key: str) -> dict[str, Any] | None:
        """``head_object`` of ``key``, or None when it is missing."""
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

    def modified(self, key: str) -> float | None:
        """The object's ``LastModified``."""
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self.prefix + check_key(key))
        except (ClientError, BotoCoreError):
            return None
        return head["LastModified"].timestamp()

    def put(self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None) -> str:
        """Write an object whole with one ``put_object``; see :meth:`ObjectStore.put`."""
        full = self.prefix + check_key(key)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": full, "Body": data}
        if create_only:
            kwargs["IfNoneMatch"] = "*"
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        try:
            return self._client.put_object(**kwargs)["ETag"]
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, key, conditional=create_only or if_match is not None)

    def list(self, prefix: str) -> Iterator[str]:
        """Yield keys under ``prefix`` in lexicographic order (S3 lists in that order)."""
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", ()):
                    yield obj["Key"][len(self.prefix) :]
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, prefix)

    def list_children(self, prefix: str) -> list[str]:
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
