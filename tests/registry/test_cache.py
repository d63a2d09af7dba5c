"""The local artifact cache: a second load without a download, and never the bytes of another hash."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.errors import IntegrityError


@pytest.fixture
def served(location: str, tmp_path: Path) -> tuple[Registry, list[str]]:
    """A registry with v1 in production, opened with a cache, and a log of the store reads."""
    X, y = load_iris(return_X_y=True)
    Registry.open(location).register_model("iris", LogisticRegression(max_iter=300).fit(X, y), operation_key="k")
    reg = Registry.open(location, cache_dir=tmp_path / "cache")
    reads: list[str] = []
    original = reg.store.get

    def counting_get(key: str):
        reads.append(key)
        return original(key)

    reg.store.get = counting_get  # type: ignore[method-assign]
    return reg, reads


def test_a_second_load_is_served_from_the_cache(served: tuple[Registry, list[str]]) -> None:
    reg, reads = served
    blob = reg.get_version("iris", 1).artifact.key
    first = reg.load("models:/iris/1")
    assert reads.count(blob) == 1
    second = reg.load("models:/iris/1")
    assert reads.count(blob) == 1  # no second download
    assert (first.coef_ == second.coef_).all()


def test_a_tampered_cache_entry_is_never_served(served: tuple[Registry, list[str]], tmp_path: Path) -> None:
    reg, reads = served
    mv = reg.get_version("iris", 1)
    reg.load(mv.uri)
    entry = reg.cache.path(mv.artifact.sha256)
    entry.write_bytes(entry.read_bytes()[:-10] + b"0123456789")  # corrupted on disk
    model = reg.load(mv.uri)  # the entry is dropped and the verified bytes fetched again
    assert reads.count(mv.artifact.key) == 2 and hasattr(model, "coef_")
    assert reg.cache.get(mv.artifact.sha256) is not None  # refilled with the right bytes
    # Bytes of another hash can never be stored under this one.
    reg.cache.put(mv.artifact.sha256, b"not the model")
    assert reg.cache.get(mv.artifact.sha256) != b"not the model"


def test_a_damaged_store_is_still_refused_without_a_cached_copy(served: tuple[Registry, list[str]]) -> None:
    reg, _ = served
    mv = reg.get_version("iris", 1)
    reg.store.put(mv.artifact.key, b"tampered")
    with pytest.raises(IntegrityError):
        reg.load(mv.uri)
    assert reg.cache.get(mv.artifact.sha256) is None  # nothing unverified was cached
