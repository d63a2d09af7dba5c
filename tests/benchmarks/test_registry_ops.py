"""The request counts `make bench` prints cover every S3 call, the direct single-object requests included."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from benchmarks.registry_ops import RequestCounter
from prefect_model_registry.registry.errors import PreconditionFailed
from prefect_model_registry.registry.store.s3 import S3Store
from tests.conftest import BUCKET


def test_the_counter_sees_direct_requests_and_boto3_calls_alike(s3_server) -> None:
    store = S3Store(BUCKET, uuid.uuid4().hex)
    assert store._direct is not None
    counter = RequestCounter()
    counter.attach(store)
    store.put("k", b"x", create_only=True)
    with pytest.raises(PreconditionFailed):
        store.put("k", b"y", create_only=True)
    store.get("k")
    assert store.exists("k")
    assert list(store.list("")) == ["k"]
    assert counter.calls == Counter({"PutObject": 2, "GetObject": 1, "HeadObject": 1, "ListObjectsV2": 1})
    assert counter.lost == 1
