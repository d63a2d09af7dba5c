"""Large objects on S3: resumable multipart uploads, parallel ranged downloads, server-side copies, ranged reads.

Every request goes through the boto3 client (signing, retries, endpoints, credentials): this module only
decides *which* requests. Downloads and copies are boto3's managed transfers (``s3transfer``: parallel ranged
GETs, multipart copy) as they are. Uploads are not, for one reason: a multipart upload that ``s3transfer``
began cannot be taken up again (it neither finds nor accepts an upload id), and a 3 GiB registration killed at
90 % must not start from zero. So an upload here:

1. looks in the bucket for an unfinished upload of the same key (``ListMultipartUploads``) and lists its parts
   (``ListParts``). A key is the SHA-256 of the bytes (``blobs/sha256/<hex>``), so any process registering the
   same bytes, on any host, finds it, with or without the operation key;
2. reads the file once, in order; a part the server already holds is reused only when its ETag is
   the MD5 of the bytes this process would send for that part number, at the same size (under SSE-KMS, where an
   ETag is not an MD5, nothing is reused and everything is sent again);
3. sends the missing parts, at most ``PMR_TRANSFER_CONCURRENCY`` at once (memory: that many parts);
4. completes the upload only if the file is still the one first hashed (same size, inode, modification and
   change times: one ``stat``, where hashing again would cost a second read and a core), so a file that changed
   after it was first hashed never lands under the old hash's name.

An upload that fails part-way is left in the bucket for the retry to resume. ``pmr verify`` reports unfinished
uploads, ``pmr verify --repair`` and ``pmr gc`` abort those older than the grace period, and S3's
``AbortIncompleteMultipartUpload`` lifecycle rule is the operator's backstop.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig

from prefect_model_registry.registry.errors import IntegrityError
from prefect_model_registry.registry.settings import settings
from prefect_model_registry.registry.store.base import Progress

#: S3 allows at most this many parts in one upload, and no part (but the last) under 5 MiB on AWS.
MAX_PARTS = 10_000
#: The largest object one ``CopyObject`` (or one PUT) may write.
COPY_MAX = 5 * 1024**3


@dataclass(frozen=True)
class Plan:
    """How a transfer of ``size`` bytes moves: in parts of ``chunk`` bytes, ``concurrency`` at once."""

    threshold: int
    chunk: int
    concurrency: int

    @classmethod
    def now(cls, size: int = 0) -> Plan:
        """The plan from the settings, with the part size raised when ``size`` would need too many parts."""
        cfg = settings()
        chunk = max(cfg.multipart_chunk, -(-size // MAX_PARTS))
        return cls(cfg.multipart_threshold, chunk, cfg.transfer_concurrency)

    def for_copy(self) -> Plan:
        """The plan for a server-side copy: one ``CopyObject`` up to S3's 5 GiB limit, parts above it."""
        return Plan(max(self.threshold, COPY_MAX), max(self.chunk, self.threshold), self.concurrency)

    def boto(self) -> TransferConfig:
        """The same plan as boto3's :class:`TransferConfig` (for managed downloads and copies)."""
        return TransferConfig(
            multipart_threshold=self.threshold,
            multipart_chunksize=self.chunk,
            max_concurrency=self.concurrency,
            use_threads=self.concurrency > 1,
        )


def find_upload(client: Any, bucket: str, key: str) -> tuple[str | None, dict[int, tuple[int, str]]]:
    """The unfinished upload of ``key`` holding the most parts, and its parts (number -> (size, ETag))."""
    best: tuple[str | None, dict[int, tuple[int, str]]] = (None, {})
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=key):
        for upload in page.get("Uploads", ()):
            if upload["Key"] != key:
                continue
            parts: dict[int, tuple[int, str]] = {}
            pages = client.get_paginator("list_parts").paginate(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
            for listed in pages:
                for part in listed.get("Parts", ()):
                    parts[int(part["PartNumber"])] = (int(part["Size"]), str(part["ETag"]))
            if best[0] is None or len(parts) > len(best[1]):
                best = (upload["UploadId"], parts)
    return best


def upload(
    client: Any,
    bucket: str,
    key: str,
    path: Path,
    size: int,
    *,
    sha256: str | None = None,
    unchanged: Callable[[], bool] | None = None,
    progress: Progress | None = None,
) -> int:
    """Upload the file ``path`` as ``key`` in parts, resuming an unfinished upload of the same key.

    Returns:
        How many parts were sent (the others were already on the server).

    ``sha256`` hashes the bytes read again, in order; ``unchanged`` asks once, before completing (see
    ``ObjectStore.put_file``).

    Raises:
        IntegrityError: the bytes read do not hash to ``sha256`` or the file changed; the upload is aborted.
        botocore errors: the caller maps them; the upload stays for a retry to resume.

    """
    plan = Plan.now(size)
    upload_id, held = find_upload(client, bucket, key)
    if upload_id is None:
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    digest = hashlib.sha256() if sha256 is not None else None
    etags: dict[int, str] = {}
    sent: list[tuple[int, Future[str]]] = []
    window = threading.BoundedSemaphore(plan.concurrency)  # parts read and not yet sent: the memory bound

    def send(number: int, body: bytes) -> str:
        try:
            answer = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
            if progress is not None:
                progress(len(body))
            return str(answer["ETag"])
        finally:
            window.release()

    with open(path, "rb") as fh, ThreadPoolExecutor(plan.concurrency, thread_name_prefix="pmr-part") as pool:
        number = 0
        while body := fh.read(plan.chunk):
            number += 1
            if digest is not None:
                digest.update(body)
            had = held.get(number)
            if had is not None and had[0] == len(body) and had[1].strip('"') == _md5(body):
                etags[number] = had[1]  # the server holds these very bytes for this part: not sent again
                if progress is not None:
                    progress(len(body))
                continue
            window.acquire()
            sent.append((number, pool.submit(send, number, body)))
            del body
        for part, future in sent:
            etags[part] = future.result()
    changed = (digest is not None and digest.hexdigest() != sha256) or (unchanged is not None and not unchanged())
    if changed:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise IntegrityError(f"{path} changed while it was uploaded (it is not the file first hashed)")
    parts = [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    return len(sent)


def _md5(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


class RangedReader(io.RawIOBase):
    """A seekable reader of one S3 object by ranged GETs, pinned to one ETag (a replaced object is an error).

    Wrapped in :class:`io.BufferedReader`, a zip directory and one member are read in a handful of requests
    without fetching the object.
    """

    def __init__(self, client: Any, bucket: str, key: str, size: int, etag: str) -> None:
        super().__init__()
        self._client, self._bucket, self._key = client, bucket, key
        self._size, self._etag, self._pos = size, etag, 0

    def readable(self) -> bool:  # noqa: D102 - io protocol
        return True

    def seekable(self) -> bool:  # noqa: D102 - io protocol
        return True

    def tell(self) -> int:  # noqa: D102 - io protocol
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:  # noqa: D102 - io protocol
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:  # noqa: D102 - io protocol
        view = memoryview(buffer).cast("B")
        if self._pos >= self._size or not len(view):
            return 0
        end = min(self._size, self._pos + len(view)) - 1
        answer = self._client.get_object(
            Bucket=self._bucket, Key=self._key, Range=f"bytes={self._pos}-{end}", IfMatch=self._etag
        )
        data = answer["Body"].read()
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)
