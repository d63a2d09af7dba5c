"""Flow fixtures: one Prefect test server for the session, helpers to find and resume paused runs."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[2] / "flows" / "data"
BATCH1 = str(DATA / "breast_cancer_batch1.csv")
BATCH2 = str(DATA / "breast_cancer_batch2.csv")


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A temporary Prefect API (SQLite) for all flow tests."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def model_name() -> str:
    """A model name unique to the test (runs share one Prefect database)."""
    return f"bc-{uuid.uuid4().hex[:8]}"


class Background:
    """A flow running in a thread; ``state`` is its final Prefect state."""

    def __init__(self, fn: Callable[..., Any], **kwargs: Any) -> None:
        self.state: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, kwargs), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        try:
            self.state = fn(return_state=True, **kwargs)
        except BaseException as exc:  # surfaced by join()
            self.error = exc

    def join(self, timeout: float = 300) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "flow did not finish"
        if self.error:
            raise self.error
        return self.state


def wait_for_paused(model_name: str, timeout: float = 180, after: int = 0) -> Any:
    """The flow run of ``model_name`` once it is Paused (the ``after``-th pause or later)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                )
            )
            for run in runs:
                if (
                    (run.parameters.get("config") or {}).get("model_name") == model_name
                    and run.state.state_details.pause_key
                    and (
                        int(run.state.state_details.pause_key.rsplit("-", 1)[-1]) > after
                        if run.state.state_details.pause_key[-1].isdigit()
                        else True
                    )
                ):
                    return run
            time.sleep(0.5)
    raise AssertionError(f"no paused run of {model_name} within {timeout}s")


def model_events(model_name: str, want: set[str], timeout: float = 30) -> set[str]:
    """The ``model.*`` event names emitted for ``model_name``, polled until ``want`` are all seen."""
    from prefect import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline and not want <= seen:
            page = client.read_events(
                limit=50,  # the client's default (100) is above the server's maximum
                filter=EventFilter(
                    event=EventNameFilter(prefix=["model."]),
                    resource=EventResourceFilter(id=[f"pmr.model.{model_name}"]),
                ),
            )
            seen = {e.event for e in page.events}
            time.sleep(0.5)
    return seen


def task_attempts(flow_state: Any) -> dict[str, int]:
    """How many times each task of the flow run that ended in ``flow_state`` ran (its final run count)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_state.state_details.flow_run_id]))
        )
    return {run.task_key.rsplit("-", 1)[0]: run.run_count for run in runs}
