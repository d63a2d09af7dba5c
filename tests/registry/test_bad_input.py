"""Bad input gets a typed error, and the store holds exactly the objects it held before."""

from __future__ import annotations

import math

import pytest

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.errors import (
    BucketNotFound,
    InvalidMetadata,
    InvalidName,
    InvalidURI,
    RegistryError,
    StoreAccessDenied,
    StoreUnavailable,
)
from prefect_model_registry.registry.names import parse_model_uri
from tests.conftest import snapshot

BAD_NAMES = [
    "",
    "../x",
    "a/b",
    "has space",
    "x" * 300,
    "bell\x07",
    "tab\tname",
    "new\nline",
    ".hidden",
    "a..b",
]


@pytest.fixture
def seeded(reg: Registry) -> Registry:
    reg.register("good", b"1", fmt="bytes")
    return reg


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_model_names_write_nothing(seeded: Registry, name: str) -> None:
    before = snapshot(seeded)
    with pytest.raises(InvalidName) as info:
        seeded.register(name, b"x", fmt="bytes")
    assert isinstance(info.value, ValueError)
    assert snapshot(seeded) == before


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "models:/",
        "models:/good",
        "models:/good/",
        "models:/good/0",
        "models:/good/-1",
        "models:/good/1.5",
        "models:/good@",
        "models:/good@Bad Alias",
        "s3://good/1",
        "models://good/1",
        "models:/../x/1",
        "good/١",
    ],
)
def test_malformed_uris(seeded: Registry, uri: str) -> None:
    with pytest.raises((InvalidURI, InvalidName)):
        seeded.resolve(uri)


def test_uri_forms() -> None:
    assert parse_model_uri("models:/churn/7").version == 7
    assert parse_model_uri("churn@production").label == "production"
    assert parse_model_uri("models:/churn@champion").label == "champion"
    assert parse_model_uri("churn/latest").label == "latest"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nonfinite_metrics_write_nothing(seeded: Registry, value: float) -> None:
    before = snapshot(seeded)
    with pytest.raises(InvalidMetadata):
        seeded.register("good", b"x", VersionInfo(metrics={"auc": value}), fmt="bytes")
    assert snapshot(seeded) == before


def test_bad_params_format_and_artifact_write_nothing(seeded: Registry) -> None:
    before = snapshot(seeded)
    with pytest.raises(InvalidMetadata):
        seeded.register("good", b"x", VersionInfo(params={"lr": math.nan}), fmt="bytes")
    with pytest.raises(InvalidMetadata):
        seeded.register("good", b"x", fmt="onnx-ish")
    with pytest.raises(InvalidMetadata):
        seeded.register("good", b"", fmt="bytes")
    assert snapshot(seeded) == before


def test_refused_lifecycle_changes_write_nothing(seeded: Registry) -> None:
    before = snapshot(seeded)
    for call in (
        lambda: seeded.promote("good", 1, "production"),
        lambda: seeded.promote("good", 1, "prod"),
        lambda: seeded.promote("good", 9, "staging"),
        lambda: seeded.set_alias("good", "champion", 9),
        lambda: seeded.remove_alias("good", "champion"),
        lambda: seeded.rollback("good"),
        lambda: seeded.record_decision("good", 1, approved=True, reviewer=""),
    ):
        with pytest.raises(RegistryError):
            call()
    assert snapshot(seeded) == before


def test_missing_bucket(s3_server) -> None:
    with pytest.raises(BucketNotFound) as info:
        Registry.open("s3://no-such-bucket-here/x")
    assert isinstance(info.value, FileNotFoundError)
    assert "no-such-bucket-here" in str(info.value)


def test_wrong_credentials(s3_server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(StoreAccessDenied) as info:
        Registry.open("s3://pmr-tests/x")
    assert isinstance(info.value, PermissionError)


def test_endpoint_down(s3_server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(StoreUnavailable) as info:
        Registry.open("s3://pmr-tests/x")
    assert isinstance(info.value, ConnectionError)


def test_missing_local_registry_without_create(tmp_path) -> None:
    with pytest.raises(BucketNotFound):
        Registry.open(tmp_path / "absent", create=False)


def test_unsupported_location_scheme() -> None:
    with pytest.raises(InvalidURI):
        Registry.open("gs://bucket/x")
