"""``pmr ci``: parameter parsing, failure reasons, usage errors, no Prefect import for the registry commands; and
what a failed run prints: one reason line, locally and through a deployment on a real server and worker.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from prefect_model_registry.flows.cli import app
from prefect_model_registry.flows.cli.ci import parse_params
from prefect_model_registry.flows.cli.runs import failure_reason
from tests.deployments.conftest import Stack


def test_parse_params_json_or_string() -> None:
    assert parse_params(["version=7", "stage=staging", 'approval={"required_for": []}', "reason=tag v7", "x="]) == {
        "version": 7,
        "stage": "staging",
        "approval": {"required_for": []},
        "reason": "tag v7",
        "x": "",
    }
    with pytest.raises(typer.BadParameter):
        parse_params(["no-equals-sign"])


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Flow run encountered an exception: GateFailed: models:/m/2 registered but blocked", "a gate failed"),
        ("Flow run encountered an exception: ApprovalRejected: rejected by x: no", "the reviewer rejected"),
        ("Flow run encountered an exception: ApprovalTimedOut: no decision within 60s", "no reviewer decided"),
        ("Flow run encountered an exception: DatasetError: cannot read", "the dataset could not be used"),
        ("Flow run encountered an exception: ValueError: boom", "the flow run failed"),
    ],
)
def test_failure_reason(message: str, expected: str) -> None:
    from prefect.states import Failed

    assert failure_reason(Failed(message=message)).startswith(expected)


def test_failure_reason_other_states() -> None:
    from prefect.states import Cancelled, Crashed, Failed

    assert "timed out" in failure_reason(Failed(name="TimedOut", message="Flow run exceeded timeout of 5 second(s)"))
    assert "crashed" in failure_reason(Crashed(message="process exited with -9"))
    assert "cancelled" in failure_reason(Cancelled())


@pytest.mark.parametrize(
    "args",
    [
        ["ci", "retrain", "m", "--local"],  # --local needs a dataset
        ["ci", "retrain", "m", "--param", "oops"],
        ["ci", "retrain", "m", "--expect-stage", "archived"],
        ["ci", "retrain"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output


def test_registry_commands_do_not_import_prefect() -> None:
    code = "import sys, prefect_model_registry.flows.cli; sys.exit(1 if 'prefect' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_unreachable_api_exits_1_with_one_line(tmp_path) -> None:
    from prefect_model_registry.flows.dev.server import free_port

    env = {
        "PATH": "/usr/bin:/bin",
        "PREFECT_HOME": str(tmp_path),
        "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    pmr = [sys.executable, "-c", "from prefect_model_registry.flows.cli import main; main()"]
    out = subprocess.run([*pmr, "ci", "retrain", "m"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "could not start a run of 'retrain-model/retrain'" in out.stdout and "Traceback" not in out.stderr


def test_pause_expiry_is_named_an_approval_timeout() -> None:
    from prefect.states import Failed

    # The server's words when a pause expires before anyone resumes the run.
    assert failure_reason(Failed(message="The flow was failed and never resumed.")).startswith("no reviewer decided")


@pytest.mark.slow
def test_local_failure_is_a_few_readable_lines(tmp_path) -> None:
    from tests.flows.conftest import BATCH1

    small = tmp_path / "small.csv"  # too few rows: the data-quality gate fails, as a user's first try often does
    small.write_text("".join(Path(BATCH1).read_text().splitlines(keepends=True)[:40]))
    env = {
        "PATH": "/usr/bin:/bin",
        "PREFECT_HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    pmr = [sys.executable, "-m", "prefect_model_registry.flows.cli", "--registry", str(tmp_path / "reg")]
    args = ["ci", "retrain", "m", "--local", "--dataset", str(small), "--param", 'approval={"required_for": []}']

    out = subprocess.run([*pmr, *args], env=env, capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "pmr ci: FAILED: a gate failed" in out.stdout and "data-quality gate failed" in out.stdout
    assert "Traceback" not in text and "telemetry" not in text and "database is locked" not in text
    reasons = [line for line in text.splitlines() if line.startswith("pmr ci: FAILED")]
    assert len(reasons) == 1, text  # and the run's own last log line: "Finished in state Failed('GateFailed: …')"

    out = subprocess.run([*pmr, *args, "--traceback"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "Traceback" in out.stderr and "GateFailed" in out.stderr


def test_overrides_merge_over_the_deployments_config() -> None:
    from prefect_model_registry.flows.cli.runs import merge_config

    deployed = {"model_name": "bc", "split": {"test_size": 0.25, "random_state": 1}, "approval": {"four_eyes": True}}
    merged = merge_config(deployed, {"split": {"test_size": 0.3}}, {"model_name": "churn", "approval.mode": "suspend"})
    assert merged == {
        "model_name": "churn",
        "split": {"test_size": 0.3, "random_state": 1},
        "approval": {"four_eyes": True, "mode": "suspend"},
    }
    assert deployed["split"]["test_size"] == 0.25  # the deployment's value is not changed in place


def test_a_temporary_api_that_does_not_start_is_one_reason_line(tmp_path) -> None:
    from tests.flows.conftest import BATCH1

    # Deterministic stand-in for a busy runner: the temporary API gets 1 s to answer, too little to start.
    env = {
        "PATH": "/usr/bin:/bin",
        "PREFECT_HOME": str(tmp_path / "home"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    pmr = [sys.executable, "-m", "prefect_model_registry.flows.cli", "--registry", str(tmp_path / "reg")]
    args = ["ci", "retrain", "m", "--local", "--dataset", BATCH1]
    out = subprocess.run([*pmr, *args], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    reasons = [line for line in out.stdout.splitlines() if line.startswith("pmr ci: ERROR:")]
    assert len(reasons) == 1 and "temporary Prefect API" in reasons[0], out.stdout + out.stderr[-3000:]
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in reasons[0]
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.slow
@pytest.mark.s3
def test_deployment_data_quality_failure_is_one_reason_line(stack: Stack, s3_server: Any) -> None:
    """pmr ci through the deployment and a process worker, on a batch failing 8 checks (two columns missing)."""
    import pandas as pd
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.conftest import BUCKET
    from tests.deployments.conftest import DATA

    frame = pd.read_csv(DATA / "breast_cancer_batch1.csv").drop(columns=["target", "worst radius"])
    key = f"{stack.prefix}/data/two-columns-missing.csv"
    s3_server.client.put_object(Bucket=BUCKET, Key=key, Body=frame.to_csv(index=False).encode())
    dataset, model = f"s3://{BUCKET}/{key}", f"bc-dq-{uuid.uuid4().hex[:6]}"

    out = stack.cli("pmr", "ci", "retrain", model, "--dataset", dataset, "--poll", "0.5")
    text = out.stdout + out.stderr
    assert out.returncode == 1, text[-4000:] + stack.worker_log()
    assert "Traceback" not in text, text[-4000:]
    reasons = [line for line in text.splitlines() if line.startswith("pmr ci: FAILED")]
    assert len(reasons) == 1, text[-4000:]
    assert "a gate failed" in reasons[0] and "and +3 more" in reasons[0], reasons

    run_id = re.search(r"run '[^']+' \(([0-9a-f-]{36})\)", out.stdout)
    assert run_id, out.stdout
    with temporary_settings(updates={PREFECT_API_URL: stack.server.api_url}), get_client(sync_client=True) as client:
        run = client.read_flow_run(uuid.UUID(run_id.group(1)))
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    stack.track_worker_children()
    assert run.state is not None and run.state.is_failed()
    # The final state's message is what the UI (and the run's last log line under --watch) shows.
    assert "data-quality gate failed" in (run.state.message or "") and "+3 more" in (run.state.message or "")
    assert "encountered an exception" not in (run.state.message or "")
    (report,) = [a.data for a in artifacts if a.key == f"{model}-data-quality"]
    plain = str(report).replace("\\", "")  # Markdown escapes
    assert f"**dataset**: {dataset}" in plain, plain[:1500]
    assert "column 'target' is missing from the dataset" in plain
    assert "list index out of range" not in plain and "BatchData" not in plain
