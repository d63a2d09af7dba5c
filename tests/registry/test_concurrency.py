"""Races between processes (not threads) on both backends: no collision, no gap, no lost event."""

from __future__ import annotations

import itertools
import multiprocessing as mp
from typing import Any

import pytest

from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.maintenance.verify import verify

WRITERS = 8


def _register(location: str, barrier: Any, i: int) -> int:
    reg = Registry.open(location)
    barrier.wait()
    return reg.register("race", f"artifact-{i}".encode(), fmt="bytes", actor=f"writer-{i}").version


def _promote(location: str, barrier: Any, version: int) -> str:
    reg = Registry.open(location)
    barrier.wait()
    reg.promote("race", version, "production", actor=f"promoter-{version}", reason="race")
    return "ok"


def _alias(location: str, barrier: Any, version: int) -> int:
    reg = Registry.open(location)
    barrier.wait()
    reg.set_alias("race", "champion", version)
    return version


def _run(fn: Any, location: str, args: list[int]) -> list[Any]:
    ctx = mp.get_context("spawn")  # fresh interpreters: no shared client or lock state
    with ctx.Manager() as manager:
        barrier = manager.Barrier(len(args))
        with ctx.Pool(len(args)) as pool:
            return pool.starmap(fn, [(location, barrier, a) for a in args])


def test_concurrent_registrations_get_distinct_gap_free_versions(location: str) -> None:
    Registry.open(location)
    versions = _run(_register, location, list(range(WRITERS)))
    assert sorted(versions) == list(range(1, WRITERS + 1))
    reg = Registry.open(location)
    events = reg.history("race")
    assert sorted(e.version for e in events if e.type == "registered") == list(range(1, WRITERS + 1))
    # Each writer's manifest holds its own bytes: nobody overwrote anybody.
    owners = {reg.get_version("race", v).created_by for v in versions}
    assert owners == {f"writer-{i}" for i in range(WRITERS)}
    assert verify(reg).ok


@pytest.mark.parametrize("kind", ["promote", "alias"])
def test_concurrent_promotions_leave_one_production_and_lose_no_event(location: str, kind: str) -> None:
    reg = Registry.open(location)
    for i in range(WRITERS):
        reg.register("race", f"a{i}".encode(), fmt="bytes")
        if kind == "promote":
            reg.promote("race", i + 1, "staging")
    before = len(reg.history("race"))
    if kind == "promote":
        assert _run(_promote, location, list(range(1, WRITERS + 1))) == ["ok"] * WRITERS
    else:
        _run(_alias, location, list(range(1, WRITERS + 1)))
    events = reg.history("race")  # also checks the whole hash chain
    assert len(events) == before + WRITERS
    state = reg.state("race")
    if kind == "promote":
        assert len(state.version_in("production")) == 1
        assert len(state.version_in("archived")) == WRITERS - 1
        # The last promotion in log order is in production; each promotion archived its predecessor.
        promotions = [e for e in events if e.type == "stage_changed" and e.data["to"] == "production"]
        assert promotions[-1].version == state.production
        for prev, cur in itertools.pairwise(promotions):
            assert cur.data["archived"] == [prev.version]
    else:
        moves = [e for e in events if e.type == "alias_set"]
        assert state.aliases["champion"] == moves[-1].version
        for prev, cur in itertools.pairwise(moves):
            assert cur.data["previous"] == prev.version
    assert verify(reg).ok


def test_a_registrant_that_lost_a_number_does_not_look_at_it_again(location: str) -> None:
    # Two writers (two Registry objects: two process memories). The second still believes v1 is the newest,
    # so its create-only write at v2 loses; the store said "exists", so it goes on from v3 without reading v2.
    first, second = Registry.open(location), Registry.open(location)
    second.register("m", b"one", fmt="bytes")
    assert first.register("m", b"two", fmt="bytes").version == 2
    looked: list[str] = []
    exists = second.store.exists
    second.store.exists = lambda key: looked.append(key) or exists(key)  # type: ignore[method-assign]
    assert second.register("m", b"three", fmt="bytes").version == 3
    assert second.manifest_key("m", 2) not in looked
    assert sorted(mv.version for mv in second.versions("m")) == [1, 2, 3]
