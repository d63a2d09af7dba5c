"""Metadata is bounded, and what is over a limit is refused with a typed error before anything is written (issue 27).

A 22 MB manifest and a 20 MB tag event used to be accepted (after which ``pmr history`` took 19 s). Defaults:
manifest <= 1 MiB, event <= 256 KiB, <= 1,000 each of tags, params and metrics; settings PMR_MAX_MANIFEST_BYTES,
PMR_MAX_EVENT_BYTES and PMR_MAX_ENTRIES.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.errors import InvalidMetadata, MetadataTooLarge
from tests.conftest import snapshot


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    reg = Registry.open(str(tmp_path / "reg"))
    reg.register("m", b"model", fmt="bytes", operation_key="first")
    return reg


def refused(reg: Registry, call, match: str) -> MetadataTooLarge:
    before = snapshot(reg)
    with pytest.raises(MetadataTooLarge, match=match) as info:
        call()
    assert isinstance(info.value, InvalidMetadata)  # exit 2 from the CLI, like any bad input
    assert snapshot(reg) == before
    return info.value


@pytest.mark.parametrize("key", [None, "k"])
def test_a_manifest_over_1_mib_is_refused(reg: Registry, key: str | None) -> None:
    big = VersionInfo(params={f"p{i}": "x" * 90_000 for i in range(25)})  # 2.25 MB of params
    error = refused(reg, lambda: reg.register("m", b"other", big, fmt="bytes", operation_key=key), "manifest")
    assert error.limit == 1024 * 1024 and error.setting == "PMR_MAX_MANIFEST_BYTES"


@pytest.mark.parametrize("key", [None, "k"])
def test_a_tag_event_over_256_kib_is_refused(reg: Registry, key: str | None) -> None:
    tags = {f"t{i}": "y" * 1_000 for i in range(300)}  # 300 KB in one event
    error = refused(reg, lambda: reg.tag("m", 1, tags, operation_key=key), "event")
    assert error.limit == 256 * 1024 and error.setting == "PMR_MAX_EVENT_BYTES"


def test_a_description_event_over_256_kib_is_refused(reg: Registry) -> None:
    wide = "😀" * 90_000  # within the 100,000-character text limit, 360 KB as UTF-8
    refused(reg, lambda: reg.describe("m", 1, wide), "event")
    refused(reg, lambda: reg.register("m", b"other", VersionInfo(description=wide), fmt="bytes"), "event|manifest")


@pytest.mark.parametrize("field", ["tags", "params", "metrics"])
def test_more_than_1000_entries_are_refused(reg: Registry, field: str) -> None:
    values = {"tags": "v", "params": 1, "metrics": 0.5}
    info = VersionInfo(**{field: {f"k{i}": values[field] for i in range(1_001)}})
    refused(reg, lambda: reg.register("m", b"other", info, fmt="bytes"), f"1,001 {field}")


def test_tags_added_later_count_toward_the_limit(reg: Registry) -> None:
    reg.tag("m", 1, {f"a{i}": "v" for i in range(600)})
    refused(reg, lambda: reg.tag("m", 1, {f"b{i}": "v" for i in range(401)}), "1,001 tags")
    assert reg.tag("m", 1, {f"b{i}": "v" for i in range(400)}) is not None  # exactly 1,000: accepted


def test_limits_are_settings(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMR_MAX_EVENT_BYTES", "2000")
    refused(reg, lambda: reg.promote("m", 1, "staging", reason="r" * 3_000), "event")
    monkeypatch.setenv("PMR_MAX_ENTRIES", "2")
    three = VersionInfo(tags={"a": "1", "b": "2", "c": "3"})
    refused(reg, lambda: reg.register("m", b"x", three, fmt="bytes"), "3 tags")
    monkeypatch.setenv("PMR_MAX_MANIFEST_BYTES", "lots")
    with pytest.raises(InvalidMetadata, match="PMR_MAX_MANIFEST_BYTES"):
        reg.register("m", b"x", fmt="bytes")


def test_within_the_limits_everything_is_accepted(reg: Registry) -> None:
    info = VersionInfo(
        tags={f"t{i}": "v" * 100 for i in range(1_000)},
        params={f"p{i}": i for i in range(1_000)},
        metrics={f"m{i}": i / 1000 for i in range(1_000)},
        description="d" * 50_000,
    )
    mv = reg.register("m", b"big but fine", info, fmt="bytes", operation_key="ok")
    assert reg.register("m", b"big but fine", info, fmt="bytes", operation_key="ok").version == mv.version
    assert reg.tag("m", 1, {f"t{i}": "w" * 200 for i in range(1_000)}) is not None
