"""The mutating operations the reliability suite exercises: how to set each up, run it with a key, and check
that exactly one outcome landed."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.errors import PromotionBlocked

#: Trials per operation and backend; raise it for a longer run (e.g. PMR_RELIABILITY_TRIALS=200).
TRIALS = int(os.environ.get("PMR_RELIABILITY_TRIALS", "8"))

FAILING_REPORT = {"gate": "thresholds", "passed": False, "checks": [{"name": "auc >= 0.9", "passed": False}]}


def _staged(reg: Registry, name: str, n: int = 1) -> None:
    for i in range(n):
        reg.register(name, f"{name}-artifact-{i}".encode(), fmt="bytes")
    reg.promote(name, n, "staging")


def _two_in_production(reg: Registry, name: str) -> None:
    for v in (1, 2):
        reg.register(name, f"{name}-artifact-{v}".encode(), fmt="bytes")
        reg.promote(name, v, "staging")
        reg.promote(name, v, "production")
    reg.set_alias(name, "champion", 2)


@dataclass(frozen=True)
class Op:
    """One operation: ``setup`` (unkeyed, before the crash), ``run`` (keyed), ``check`` (after the retry)."""

    name: str
    setup: Callable[[Registry, str], None]
    run: Callable[[Registry, str, str], Any]
    check: Callable[[Registry, str, str, Any], None]


def _events_with(reg: Registry, name: str, key: str) -> list[Any]:
    return [e for e in reg.history(name) if e.op_key == key]


def _one_event(reg: Registry, name: str, key: str, outcome: Any, kind: str) -> None:
    events = _events_with(reg, name, key)
    assert [e.type for e in events] == [kind], events
    assert outcome is not None and outcome.seq == events[0].seq, (outcome, events)


def _check_register(reg: Registry, name: str, key: str, mv: Any) -> None:
    keyed = [m for m in reg.versions(name) if m.idempotency_key == key]
    assert [m.version for m in keyed] == [mv.version]
    assert reg.latest_version(name) == 1
    assert [e.version for e in reg.history(name) if e.type == "registered"] == [1]


def _check_promote(reg: Registry, name: str, key: str, event: Any) -> None:
    _one_event(reg, name, key, event, "stage_changed")
    st = reg.state(name)
    assert st.production == 2 and st.version_in("production") == [2] and st.stage_of(1) == "archived"


def _check_set_alias(reg: Registry, name: str, key: str, event: Any) -> None:
    _one_event(reg, name, key, event, "alias_set")
    assert reg.state(name).aliases == {"champion": 2}


def _check_remove_alias(reg: Registry, name: str, key: str, event: Any) -> None:
    _one_event(reg, name, key, event, "alias_removed")
    assert reg.state(name).aliases == {}


def _check_rollback(reg: Registry, name: str, key: str, event: Any) -> None:
    _one_event(reg, name, key, event, "rolled_back")
    st = reg.state(name)
    assert st.production == 1 and st.stage_of(2) == "archived" and st.aliases == {"champion": 1}
    assert st.production_history == [1]  # rolled back once, not twice


def _check_decision(reg: Registry, name: str, key: str, event: Any) -> None:
    _one_event(reg, name, key, event, "rejected")
    assert reg.state(name).blocked == {1: ["rejected"]}


def _check_report(reg: Registry, name: str, key: str, event: Any) -> None:
    _one_event(reg, name, key, event, "validated")
    assert reg.reports(name, 1)["thresholds"] == FAILING_REPORT
    try:
        reg.promote(name, 1, "production")
    except PromotionBlocked:
        return
    raise AssertionError("a failed gate was not enforced")


OPS = [
    Op(
        "register",
        lambda reg, name: None,
        lambda reg, name, key: reg.register(
            name, b"the-model", VersionInfo(metrics={"auc": 0.9}), fmt="bytes", operation_key=key
        ),
        _check_register,
    ),
    Op(
        "promote",
        lambda reg, name: (_two_in_production(reg, name), reg.rollback(name), reg.promote(name, 2, "staging")),
        lambda reg, name, key: reg.promote(name, 2, "production", reason="crash test", operation_key=key),
        _check_promote,
    ),
    Op(
        "set_alias",
        lambda reg, name: (_staged(reg, name, 2), reg.set_alias(name, "champion", 1)),
        lambda reg, name, key: reg.set_alias(name, "champion", 2, operation_key=key),
        _check_set_alias,
    ),
    Op(
        "remove_alias",
        lambda reg, name: (_staged(reg, name), reg.set_alias(name, "champion", 1)),
        lambda reg, name, key: reg.remove_alias(name, "champion", operation_key=key),
        _check_remove_alias,
    ),
    Op(
        "rollback",
        _two_in_production,
        lambda reg, name, key: reg.rollback(name, reason="crash test", move_aliases=True, operation_key=key),
        _check_rollback,
    ),
    Op(
        "record_decision",
        _staged,
        lambda reg, name, key: reg.record_decision(
            name, 1, approved=False, reviewer="rita", comment="no", operation_key=key
        ),
        _check_decision,
    ),
    Op(
        "record_report",
        _staged,
        lambda reg, name, key: reg.record_report(
            name, 1, "thresholds", FAILING_REPORT, passed=False, operation_key=key
        ),
        _check_report,
    ),
]
