"""Who registers in a flow: the run's creator when the Prefect server records one, else the claimed actor."""

from __future__ import annotations

from types import SimpleNamespace
from uuid import uuid4

import pytest
from prefect.client.schemas.objects import CreatedBy
from prefect.context import FlowRunContext

from prefect_model_registry.flows.tasks import run_registrant


def _context(created_by: CreatedBy | None) -> SimpleNamespace:
    return SimpleNamespace(flow_run=SimpleNamespace(created_by=created_by))


def test_the_server_s_creator_wins_over_the_claimed_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    user = uuid4()
    creator = CreatedBy(id=user, type="USER", display_value="dana")
    monkeypatch.setattr(FlowRunContext, "get", classmethod(lambda cls: _context(creator)))
    assert run_registrant("mallory") == ("dana", f"prefect created_by USER {user}")


@pytest.mark.parametrize("creator", [None, CreatedBy(type="USER", display_value="  ")])
def test_without_one_the_actor_is_recorded_as_claimed(monkeypatch: pytest.MonkeyPatch, creator: object) -> None:
    monkeypatch.setattr(FlowRunContext, "get", classmethod(lambda cls: _context(creator)))  # type: ignore[arg-type]
    assert run_registrant("ci-bot") == ("ci-bot", "claimed")
