"""What a process remembers between calls (issue 13): it saves requests, and never changes an outcome."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.core import background
from prefect_model_registry.registry.core import keys as K
from prefect_model_registry.registry.errors import InvalidTransition, PromotionBlocked
from prefect_model_registry.registry.maintenance.verify import verify


def _counting(reg: Registry) -> list[tuple[str, str]]:
    """Record every store call of ``reg`` as (method, key)."""
    calls: list[tuple[str, str]] = []
    store = reg.store
    for method in ("get", "put", "exists", "etag"):
        real = getattr(store, method)

        def wrapped(key: str, *args: Any, _real: Any = real, _m: str = method, **kwargs: Any) -> Any:
            calls.append((_m, key))
            return _real(key, *args, **kwargs)

        setattr(store, method, wrapped)
    return calls


def test_a_write_after_a_write_goes_straight_to_the_event(location: str) -> None:
    reg = Registry.open(location)
    for i in range(3):
        reg.register("m", b"v%d" % i, fmt="bytes")
    background.flush()
    calls = _counting(reg)
    reg.set_alias("m", "champion", 2)
    reg.promote("m", 2, "production", through_staging=True)
    background.flush()
    foreground = [c for c in calls if "state.json" not in c[1] and not c[1].endswith("/latest")]
    # One create-only write per change: no snapshot read, no head check, no manifest read (v2 is in the log).
    assert foreground == [("put", K.event_key("m", 4)), ("put", K.event_key("m", 5))]


def test_a_process_that_missed_other_writers_still_gets_the_right_outcome(location: str) -> None:
    a, b = Registry.open(location), Registry.open(location)
    for i in range(2):
        a.register("m", b"v%d" % i, fmt="bytes")
    b.promote("m", 1, "staging")  # b now remembers a state where v2 is unstaged and v1 is staged
    a.promote("m", 2, "production", through_staging=True)
    a.record_report("m", 1, "thresholds", {"auc": 0.1}, passed=False)
    with pytest.raises(InvalidTransition, match="already in production"):
        b.promote("m", 2, "production")  # planned on its old state, the write loses, re-planned on the new one
    with pytest.raises(PromotionBlocked):
        b.promote("m", 1, "production")  # the gate a failed after b last looked still blocks
    assert b.register("m", b"v3", fmt="bytes").version == 3  # numbering resumes above what a took
    assert [e.type for e in b.history("m")].count("registered") == 3
    assert verify(b).ok


def test_background_refreshes_coalesce_and_flush_runs_them_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "GATHER_S", 10.0)
    ran: list[int] = []
    gate = threading.Event()
    background.submit(gate.wait, 5)  # hold the worker so the next refreshes queue up behind it
    for i in range(5):
        background.submit(ran.append, i, key="same")
    background.submit(lambda: 1 / 0)  # a failing refresh is dropped, never raised
    gate.set()
    started = time.monotonic()
    background.flush()
    assert ran == [0]  # one refresh for the burst (it writes whatever is newest when it runs)
    assert time.monotonic() - started < 5.0  # flush does not sit out the delay


def test_snapshot_refresh_lands_after_flush(reg: Registry) -> None:
    reg.register("m", b"x", fmt="bytes")
    reg.promote("m", 1, "production", through_staging=True)
    background.flush()
    assert b'"production_history":[1]' in reg.store.get(K.state_key("m")).data
