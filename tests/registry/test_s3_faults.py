"""Faults a real server cannot produce on demand, injected with moto (never used for concurrency claims)."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.errors import PreconditionFailed, StoreError
from prefect_model_registry.registry.store.s3 import S3Store


@pytest.fixture
def moto_store(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="faults")
        yield S3Store("faults", "p", client=client), client


def _inject(client, code: str, status: int, times: int, operation: str = "PutObject") -> list[int]:
    hits = [0]

    def fault(**kwargs):
        if kwargs["model"].name == operation and hits[0] < times:
            hits[0] += 1
            raise ClientError(
                {
                    "Error": {"Code": code, "Message": "injected"},
                    "ResponseMetadata": {"HTTPStatusCode": status},
                },
                operation,
            )

    client.meta.events.register("before-call.s3.*", fault)
    return hits


def test_aws_409_conditional_conflict_counts_as_a_lost_race(moto_store) -> None:
    store, client = moto_store
    hits = _inject(client, "ConditionalRequestConflict", 409, 1)
    with pytest.raises(PreconditionFailed) as lost:
        store.put("k", b"x", create_only=True)
    assert hits[0] == 1
    assert not lost.value.taken  # "retry", not "exists": allocation must look at this number again


def test_registration_retries_after_a_409_and_gets_the_next_free_version(moto_store) -> None:
    store, client = moto_store
    reg = Registry(store)
    reg.register("m", b"one", fmt="bytes")

    calls = {"n": 0}

    def conflict_once(params, **kwargs):
        if params.get("Key", "").endswith("versions/0000000002.json") and calls["n"] == 0:
            calls["n"] += 1
            raise ClientError({"Error": {"Code": "ConditionalRequestConflict", "Message": "injected"}}, "PutObject")

    client.meta.events.register("provide-client-params.s3.PutObject", conflict_once)
    mv = reg.register("m", b"two", fmt="bytes")
    assert calls["n"] == 1
    # The conflicting write did not land, so number 2 stayed free and was taken on the retry.
    assert mv.version == 2 and reg.latest_version("m") == 2


def test_server_error_is_a_typed_store_error_and_nothing_is_published(moto_store) -> None:
    store, client = moto_store
    reg = Registry(store)
    _inject(client, "InternalError", 500, 100)
    with pytest.raises(StoreError):
        reg.register("m", b"x", fmt="bytes")
    client.meta.events.unregister("before-call.s3.*")
    assert list(store.list("models/")) == []
