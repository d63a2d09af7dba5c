"""The manifest is the record: ``registered`` events follow in the background, in version order, and the log
catches up on registrants that died (or failed to write) before logging theirs. Both backends."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import threading
from typing import Any

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.core import announcer, keys, versions
from prefect_model_registry.registry.core.log import ModelLog
from prefect_model_registry.registry.core.transfer import Source
from prefect_model_registry.registry.errors import StoreError
from prefect_model_registry.registry.maintenance.repair import repair
from prefect_model_registry.registry.maintenance.verify import verify


def _logged(reg: Registry, name: str) -> list[Any]:
    """The registered events as the log holds them (no catch-up by this read)."""
    return [e for e in ModelLog(reg.store, name).events() if e.type == "registered"]


def _die_before_logging(reg: Registry, name: str, data: bytes, actor: str, key: str | None = None) -> int:
    """A registration whose process died after its manifest landed and before its event was logged."""
    return reg._register(name, Source.of_bytes(data), VersionInfo(), "bytes", actor, key, None).version


def test_register_returns_before_its_event_and_the_log_follows_in_order(reg: Registry, monkeypatch: Any) -> None:
    held, real = threading.Event(), versions.announce

    def slow(*args: Any, **kwargs: Any) -> Any:
        held.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(versions, "announce", slow)
    numbers = [reg.register("m", f"a{i}".encode(), fmt="bytes", actor=f"who-{i}").version for i in range(4)]
    assert numbers == [1, 2, 3, 4]  # returned while no event could be written yet
    assert not reg.store.exists(keys.event_key("m", 1))
    held.set()
    events = reg.history("m")  # a read of the log in this process waits for its pending events
    assert [(e.version, e.actor) for e in events] == [(i + 1, f"who-{i}") for i in range(4)]
    assert verify(reg).ok and not [f for f in verify(reg).findings if f.kind == "unannounced"]


def test_a_promotion_right_after_registering_follows_the_registered_event(reg: Registry) -> None:
    v = reg.register("m", b"x", fmt="bytes").version
    reg.promote("m", v, "staging")
    assert [e.type for e in ModelLog(reg.store, "m").events()] == ["registered", "stage_changed"]


def test_the_next_registration_logs_what_a_dead_registrant_left(reg: Registry, location: str) -> None:
    reg.register("m", b"one", fmt="bytes")
    ghost = _die_before_logging(reg, "m", b"two", "ghost", key="ghost-key")
    reg.flush()
    assert [e.version for e in _logged(reg, "m")] == [1]
    # (the key's claim object was never made: this test wrote the manifest alone)
    assert {f.kind for f in verify(reg).findings} == {"unannounced", "claim_missing"}
    other = Registry.open(location)  # another process's registry
    assert other.register("m", b"three", fmt="bytes", actor="next").version == 3
    other.flush()
    events = _logged(reg, "m")
    assert [(e.version, e.actor) for e in events] == [
        (1, reg.get_version("m", 1).created_by),
        (2, "ghost"),
        (3, "next"),
    ]
    caught = events[1]
    assert caught.op_key == "ghost-key"  # the event its registrant would have written
    # When it was registered (never before the event ahead of it), not when it was logged.
    assert caught.at == max(reg.get_version("m", ghost).created_at, events[0].at)
    # It names the process that logged it, so two processes catching up never write the same bytes (the race
    # SeaweedFS makes its loser wait a second for); an event its own registrant logged does not.
    assert caught.data["logged_by"] == f"{socket.gethostname()}:{os.getpid()}"
    assert "logged_by" not in events[0].data and "logged_by" not in events[2].data
    assert {f.kind for f in verify(reg).findings} == {"claim_missing"}


def test_reading_the_history_logs_what_a_dead_registrant_left(reg: Registry) -> None:
    reg.register("m", b"one", fmt="bytes")
    _die_before_logging(reg, "m", b"two", "ghost")
    assert [(e.version, e.actor) for e in reg.history("m") if e.type == "registered"][1] == (2, "ghost")
    assert not verify(reg).findings


def test_repair_logs_what_a_dead_registrant_left(reg: Registry) -> None:
    _die_before_logging(reg, "m", b"one", "ghost")
    _die_before_logging(reg, "m", b"two", "ghost")
    assert [a["action"] for a in repair(reg)] == ["log"]  # a dry run changes nothing
    assert _logged(reg, "m") == []
    repair(reg, apply=True)
    assert [e.version for e in _logged(reg, "m")] == [1, 2]
    assert not verify(reg).findings


def test_an_event_that_cannot_be_written_fails_nothing_and_is_logged_later(reg: Registry, monkeypatch: Any) -> None:
    reg.register("m", b"one", fmt="bytes")
    reg.flush()
    put = reg.store.put

    def refuse_events(key: str, *args: Any, **kwargs: Any) -> Any:
        if "/events/" in key:
            raise StoreError("injected: the log is unreachable")
        return put(key, *args, **kwargs)

    monkeypatch.setattr(reg.store, "put", refuse_events)
    assert reg.register("m", b"two", fmt="bytes").version == 2  # the manifest landed: registered
    reg.flush()  # tried twice, never raises
    assert [f.kind for f in verify(reg).findings] == ["unannounced"]
    monkeypatch.setattr(reg.store, "put", put)
    assert [e.version for e in _logged(reg, "m")] == [1, 2]  # the next read of the log tried it again
    assert not verify(reg).findings


def _register_and_leave(location: str) -> None:
    Registry.open(location).register("child", b"from a child", fmt="bytes", actor="child")


def test_a_multiprocessing_child_logs_its_events_before_it_ends(location: str) -> None:
    # A multiprocessing child leaves with os._exit (no atexit): its pending event must be written before.
    child = mp.get_context("spawn").Process(target=_register_and_leave, args=(location,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    reg = Registry.open(location)
    assert [(e.version, e.actor) for e in _logged(reg, "child")] == [(1, "child")]


def test_registrations_under_contention_are_logged_in_version_order(location: str) -> None:
    regs = [Registry.open(location) for _ in range(4)]
    threads = [
        threading.Thread(target=lambda r=r, i=i: [r.register("m", f"{i}-{j}".encode(), fmt="bytes") for j in range(5)])
        for i, r in enumerate(regs)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    announcer.flush()
    assert [e.version for e in _logged(regs[0], "m")] == list(range(1, 21))
    assert verify(regs[0]).ok and not verify(regs[0]).findings


def test_bytes_uploaded_moments_ago_are_not_uploaded_again(reg: Registry, monkeypatch: Any) -> None:
    uploads: list[str] = []
    put = reg.store.put

    def counted(key: str, *args: Any, **kwargs: Any) -> Any:
        if key.startswith("blobs/"):
            uploads.append(key)
        return put(key, *args, **kwargs)

    monkeypatch.setattr(reg.store, "put", counted)
    first = reg.register("m", b"same bytes", fmt="bytes")
    reg.register("m", b"same bytes", fmt="bytes")
    reg.register("other", b"same bytes", fmt="bytes")
    assert uploads == [first.artifact.key]
    reg.register("m", b"new bytes", fmt="bytes")
    assert len(uploads) == 2
    monkeypatch.setattr(versions, "REUSE_S", 0.0)  # past the window: uploaded again (refreshing its age)
    reg.register("m", b"same bytes", fmt="bytes")
    assert uploads[-1] == first.artifact.key and len(uploads) == 3
    assert [reg.load_bytes(f"models:/m/{v}")[1] for v in (1, 2, 4)] == [b"same bytes"] * 3
