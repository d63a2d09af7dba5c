"""``pmr ci`` without a server: parameter parsing, failure reasons, usage errors, and no Prefect import for
the registry commands.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from prefect_model_registry.flows.cli import app
from prefect_model_registry.flows.cli.ci import parse_params
from prefect_model_registry.flows.cli.runs import failure_reason


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
    errors = [line for line in text.splitlines() if "ERROR" in line]
    assert len(errors) == 1, errors  # the one line Prefect logs for the failure, without its traceback

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
