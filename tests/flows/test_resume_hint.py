"""The paused run's log says how to decide from a shell with ``pmr``, and the command it shows works as written."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import pytest

from prefect_model_registry.flows.core.approval import ApprovalPolicy
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.pipeline import retrain
from prefect_model_registry.registry import Registry
from tests.flows.conftest import BATCH1, BATCH2, Background, wait_for_paused

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def first_version(tmp_path: Path, model_name: str) -> str:
    """A registry where v1 of ``model_name`` is in production (no approval needed for the first)."""
    location = str(tmp_path / "registry")
    config = RetrainConfig(
        model_name=model_name, dataset_uri=BATCH1, approval=ApprovalPolicy(required_for=[]), registry=location
    )
    assert retrain(config, return_state=True).is_completed()
    return location


def _hint(run_id: UUID, timeout: float = 30) -> str:
    """The run's 'waiting for a reviewer's decision' line, once its logs reached the API."""
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200)
            found = [log.message for log in logs if log.message.startswith("waiting for a reviewer's decision")]
            if found:
                return found[0]
            time.sleep(0.5)
    raise AssertionError("the paused run logged no hint")


def test_the_paused_run_suggests_pmr_approve_and_reject_and_the_reject_line_works(
    first_version: str, model_name: str
) -> None:
    policy = ApprovalPolicy(poll_interval_seconds=1, timeout_seconds=120)
    config = RetrainConfig(model_name=model_name, dataset_uri=BATCH2, registry=first_version, approval=policy)
    run = Background(retrain, config=config)
    paused = wait_for_paused(model_name)
    hint = _hint(paused.id)
    assert "python -c" not in hint and "resume_flow_run" not in hint, hint
    commands = dict(part.split(": ", 1) for part in hint.split("or from a shell, ", 1)[1].split("; "))
    target = f"{model_name} 2 --stage production"
    assert f"--registry {first_version} --actor 'YOUR NAME' approve {target} --comment '...'" in commands["approve"]
    assert commands["reject"].startswith("PREFECT_API_URL=http://127.0.0.1:"), commands
    # Run as a reviewer would paste it, their name filled in.
    line = commands["reject"].replace("YOUR NAME", "erin")
    venv = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{venv}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PMR_REGISTRY_URI", None)
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0 and "rejected by erin" in done.stdout, (line, done.stdout, done.stderr)
    assert run.join().is_failed()
    reg = Registry.open(first_version)
    rejected = [e for e in reg.history(model_name) if e.type == "rejected"]
    assert [(e.actor, e.reason, e.run_id) for e in rejected] == [("erin", "why", str(paused.id))]
