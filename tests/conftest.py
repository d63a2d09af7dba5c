"""Shared fixtures: real S3 servers (SeaweedFS; moto for the store contract) for the session, and registries."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Before anything imports prefect: no telemetry (it also caused an SQLite "database is locked" once).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PMR_ACTOR", "pytest")
# Tests that tamper with a stored artifact expect load to read the store: the local artifact cache is off
# unless a test turns it on (tests/registry/test_cache.py).
os.environ.setdefault("PMR_CACHE_DIR", "off")

from prefect_model_registry.flows.dev import server as flows_server
from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.core import background
from tests.motoserver import MotoServer
from tests.reaper import guard
from tests.seaweed import SeaweedServer

# Every `prefect server` a fixture starts dies with this process, even when it is killed (tests/reaper.py).
flows_server.ON_START.append(guard)

BUCKET = "pmr-tests"


def skip_unless_ci(why: str, *, allow_module_level: bool = False) -> None:
    """Skip a test whose system dependency is missing, except under ``CI=true``, where that is a failure.

    CI installs Chromium and PostgreSQL (``.ci/system-deps``); a CI run that silently skipped their tests could
    go green without ever running them.
    """
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {why}", pytrace=False)
    pytest.skip(why, allow_module_level=allow_module_level)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedServer]:
    """A SeaweedFS S3 server on 127.0.0.1 with bucket ``pmr-tests``; its env is exported for boto3."""
    server = SeaweedServer().start()
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    try:
        server.create_bucket(BUCKET)
        yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


@pytest.fixture(params=["local", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty registry location on each backend: a directory, or a unique prefix in the bucket."""
    if request.param == "local":
        return str(tmp_path / "registry")
    request.getfixturevalue("s3_server")
    return f"s3://{BUCKET}/{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A moto S3 server on 127.0.0.1 with bucket ``pmr-tests``; its env is not exported (see ``contract_location``)."""
    with MotoServer() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(params=["local", "s3", "moto"])
def contract_location(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty location on each object-store implementation: a directory, SeaweedFS, moto.

    For "moto" the AWS endpoint, credentials and region point at moto for this test only (SeaweedFS's, exported
    for the session, come back after it), so ``open_store`` and ``Registry.open`` of the location talk to moto.
    """
    if request.param == "local":
        return str(tmp_path / "registry")
    if request.param == "s3":
        request.getfixturevalue("s3_server")
    else:
        server: MotoServer = request.getfixturevalue("moto_server")
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
    return f"s3://{BUCKET}/{uuid.uuid4().hex}"


@pytest.fixture
def reg(location: str) -> Registry:
    """An empty registry on the parametrised backend."""
    return Registry.open(location)


def count_gets(reg: Registry) -> list[str]:
    """From now on, every key ``reg``'s store reads (``get``) is appended to the returned list."""
    gets: list[str] = []
    real = reg.store.get

    def counting(key: str, *args: Any, **kwargs: Any) -> Any:
        gets.append(key)
        return real(key, *args, **kwargs)

    reg.store.get = counting  # type: ignore[method-assign]
    return gets


def snapshot(reg: Registry) -> dict[str, bytes]:
    """Every object in the registry with its bytes: to assert that a refused call wrote nothing."""
    background.flush()  # cache refreshes of earlier calls land first: only the call under test may change things
    return {key: reg.store.get(key).data for key in reg.store.list("")}
