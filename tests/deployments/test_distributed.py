"""The shared setup end to end: Prefect server on PostgreSQL, deployments from prefect.yaml, a process worker,
the registry on S3. The CLIs run as a CI job would run them: subprocesses configured by environment only.

Every scenario that needs a flow run is started at once by the ``launched`` fixture (the worker runs them side
by side, which keeps this module to a couple of minutes on 2 cores); each test then checks its own outcome.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from prefect_model_registry.registry import Registry
from tests.conftest import BUCKET
from tests.deployments.conftest import BIN, POOL, ROOT, Stack

pytestmark = [pytest.mark.slow, pytest.mark.s3]

NO_APPROVAL = json.dumps({"required_for": []})
QUICK_APPROVAL = json.dumps(
    {"required_for": ["production"], "poll_interval_seconds": 1, "timeout_seconds": 300, "first_version_exempt": False}
)
SUSPEND_APPROVAL = json.dumps(
    {"required_for": ["production"], "mode": "suspend", "timeout_seconds": 600, "first_version_exempt": False}
)


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[None]:
    """Point this process's Prefect client at the stack's server (for reading runs, emitting, resuming)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: stack.server.api_url}):
        yield


def unique(kind: str) -> str:
    return f"bc-{kind}-{uuid.uuid4().hex[:6]}"


@dataclass
class Launched:
    """The background scenarios: a model name and a CLI process (output in a file) per scenario."""

    stack: Stack
    models: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, key: str, *args: str | Path) -> None:
        with open(self.stack.tmp / f"{key}.out", "wb") as out:
            self.procs[key] = subprocess.Popen(
                [str(BIN / str(args[0])), *map(str, args[1:])],
                env=self.stack.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def result(self, key: str, timeout: float = 420) -> tuple[int, str]:
        """Exit code and output of scenario ``key`` once its process has ended."""
        code = self.procs[key].wait(timeout=timeout)
        self.stack.track_worker_children()
        return code, (self.stack.tmp / f"{key}.out").read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def launched(stack: Stack, api: None) -> Iterator[Launched]:
    """Start every scenario that needs a flow run; the tests below wait for and check one each."""
    bg = Launched(stack)
    try:
        m = bg.models = {
            key: unique(key)
            for key in ("nightly", "trigger", "ok", "gate", "reject", "timeout", "local", "suspend", "widen")
        }
        retrain = ("pmr", "ci", "retrain")
        # The nightly deployment with Prefect's own CLI: prefect deployment run ... --watch. A run's `config`
        # replaces the deployment's, so it is the deployment's config with this test's model name.
        nightly = stored_config("retrain-model/retrain-nightly") | {"model_name": m["nightly"]}
        bg.start(
            "nightly",
            *("prefect", "deployment", "run", "retrain-model/retrain-nightly", "--watch", "--watch-timeout", "400"),
            *("--params", json.dumps({"config": nightly})),
        )
        # pmr ci retrain through the on-demand deployment: success, a failed gate, a rejection, a short wait.
        bg.start(
            "ok",
            *(*retrain, m["ok"], "--dataset", stack.dataset, "--param", f"approval={NO_APPROVAL}"),
            *("--expect-stage", "production", "--poll", "0.5"),
        )
        bg.start(
            "gate",
            *(*retrain, m["gate"], "--dataset", stack.dataset, "--expect-stage", "production"),
            *("--param", 'estimator="sklearn.dummy.DummyClassifier"'),
        )
        bg.start("reject", *retrain, m["reject"], "--dataset", stack.dataset, "--param", f"approval={QUICK_APPROVAL}")
        # Suspend: the flow's process exits while it waits; on resume the worker re-runs it from the top.
        bg.start(
            "suspend",
            *(*retrain, m["suspend"], "--dataset", stack.dataset, "--param", f"approval={SUSPEND_APPROVAL}"),
            *("--expect-stage", "production", "--poll", "0.5"),
        )
        missing = f"s3://{BUCKET}/{stack.prefix}/missing.csv"
        bg.start("timeout", *retrain, m["timeout"], "--dataset", missing, "--timeout", "1")
        # --local: the flow in the CLI's own process.
        bg.start(
            "local",
            *(*retrain, m["local"], "--local", "--dataset", stack.dataset),
            *("--param", 'target_stage="staging"', "--expect-stage", "staging"),
        )
        # Whoever starts a run sets its job variables, the flow-run process's environment among them: an
        # attempt to widen the trainer allow-list (and put a module of its own on the import path).
        code = stack.tmp / "attacker"
        code.mkdir()
        (code / "tripwire_trainer.py").write_text(f"open({str(stack.tmp / 'tripwire')!r}, 'w').write('ran')\n")
        widen = stored_config("retrain-model/retrain") | {"model_name": m["widen"], "trainer": "tripwire_trainer:fit"}
        env = {"PMR_TRAINER_MODULES": "tripwire_trainer", "PYTHONPATH": str(code)}
        bg.start(
            "widen",
            *("prefect", "deployment", "run", "retrain-model/retrain", "--watch", "--watch-timeout", "400"),
            *("--params", json.dumps({"config": widen}), "--job-variable", f"env={json.dumps(env)}"),
        )
        bad = stack.tmp / "corrupted.csv"
        bad.write_text("mean radius,target\nnot-a-number,7\n")
        bg.start("local-bad", *retrain, m["local"] + "-bad", "--local", "--dataset", bad)
        # The README's one-command rollback, from the terminal: the registry's event sink must emit
        # model.rolled-back to the stack's Prefect API, and the deployment trigger must pick it up.
        roll_back_from_the_terminal(stack, m["trigger"])
        yield bg
    finally:
        bg.stop()


def stored_config(deployment: str) -> dict[str, Any]:
    """The ``config`` parameter a deployment holds on the server."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return dict(client.read_deployment_by_name(deployment).parameters["config"])


def roll_back_from_the_terminal(stack: Stack, model: str) -> None:
    """Register two real models, put each in production with ``pmr``, then ``pmr rollback`` (all subprocesses)."""
    import numpy as np
    import skops.io as sio
    from sklearn.dummy import DummyClassifier

    artifact = stack.tmp / "dummy.skops"
    sio.dump(DummyClassifier(strategy="prior").fit(np.zeros((4, 1)), [0, 1, 1, 0]), artifact)
    for version in (1, 2):
        steps = [
            ("register", model, artifact, "--dataset", stack.dataset, "--metric", f"roc_auc=0.{version}"),
            ("promote", model, str(version), "--to", "staging", "--reason", "test setup"),
            ("promote", model, str(version), "--to", "production", "--reason", "test setup"),
        ]
        for step in steps:
            done = stack.cli("pmr", *step)
            assert done.returncode == 0, f"pmr {step[0]}: {done.stdout}{done.stderr}"
    done = stack.cli("pmr", "rollback", model, "--reason", "bad predictions")
    assert done.returncode == 0, done.stdout + done.stderr
    assert Registry.open(stack.registry, create=False).state(model).production == 1


def wait_final(flow_run_id: Any, timeout: float = 240) -> Any:
    """The flow run once it is in a final state."""
    from prefect import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(flow_run_id)
            if run.state is not None and run.state.is_final():
                return run
            time.sleep(1)
    raise AssertionError(f"flow run {flow_run_id} not final within {timeout}s")


def runs_of(deployment: str) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(deployment)
        return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])))


def test_prefect_yaml_deployed_as_written(stack: Stack, api: None) -> None:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("retrain-model/retrain-nightly")
        assert nightly.work_pool_name == POOL
        assert [s.schedule.cron for s in nightly.schedules] == ["0 3 * * *"]
        assert nightly.parameters["config"]["dataset_uri"] == stack.dataset  # from PMR_DATASET_URI at deploy time
        assert nightly.parameters["config"]["target_stage"] == "staging"
        # The checkout is found at run time from the worker's PMR_PROJECT_DIR, not baked in at deploy time.
        assert nightly.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $PMR_PROJECT_DIR }}"}}
        ]
        for name in (
            "retrain-model/retrain",
            "retrain-model/retrain-after-rollback",
            "promote-model/promote",
            "rollback-model/rollback",
            "decide-model/approve",
            "archive-model/archive",
        ):
            assert client.read_deployment_by_name(name).work_pool_name == POOL


def test_the_server_keeps_its_state_in_postgresql(stack: Stack) -> None:
    names = set(stack.pg.sql("SELECT name FROM deployment").split())
    assert {"retrain-nightly", "retrain", "retrain-after-rollback", "promote", "rollback", "approve"} <= names
    assert not list((stack.server.home).glob("*.db")), "the server fell back to SQLite"


def test_nightly_retraining_runs_on_the_worker_and_registers_on_s3(
    stack: Stack, launched: Launched, s3_server: Any
) -> None:
    model = launched.models["nightly"]
    code, out = launched.result("nightly")
    assert code == 0, out[-4000:] + stack.worker_log()
    assert "Flow run finished successfully in 'Completed'" in out

    reg = Registry.open(stack.registry, create=False)
    assert reg.state(model).stage_of(1) == "staging"
    mv = reg.get_version(model, 1)
    assert mv.lineage.deployment == "retrain-nightly" and mv.lineage.dataset_uri == stack.dataset
    listing = s3_server.client.list_objects_v2(Bucket=BUCKET, Prefix=f"{stack.prefix}/registry/models/{model}/")
    keys = [o["Key"] for o in listing["Contents"]]
    assert f"{stack.prefix}/registry/models/{model}/versions/0000000001.json" in keys


def test_rollback_event_triggers_the_retraining_deployment(stack: Stack, launched: Launched) -> None:
    model = launched.models["trigger"]
    deadline = time.monotonic() + 120
    triggered = []
    while not triggered and time.monotonic() < deadline:
        runs = runs_of("retrain-model/retrain-after-rollback")
        triggered = [r for r in runs if r.parameters["config"]["model_name"] == model]
        time.sleep(0.5)
    assert triggered, "the trigger did not create a run of retrain-after-rollback"
    run = wait_final(triggered[0].id, timeout=420)
    stack.track_worker_children()
    assert run.state.is_completed(), f"{run.state.name}: {run.state.message}\n{stack.worker_log()}"
    # The triggered retrain registered v3 and staged it; the restored v1 stays in production.
    state = Registry.open(stack.registry, create=False).state(model)
    assert (state.stage_of(3), state.production) == ("staging", 1)


def test_ci_retrain_exits_0_on_success_and_checks_the_registry(launched: Launched) -> None:
    model = launched.models["ok"]
    code, out = launched.result("ok")
    assert code == 0, out[-4000:]
    assert "state: Running" in out and "state: Completed" in out
    assert f"registered models:/{model}/1" in out  # the flow's own log line, streamed from the server
    assert "[load_dataset-" in out  # task logs carry their task's name
    assert f"checked: models:/{model}/1 is production" in out


def test_ci_retrain_exits_1_on_a_failed_gate(stack: Stack, launched: Launched) -> None:
    model = launched.models["gate"]
    code, out = launched.result("gate")
    assert code == 1, out[-4000:]
    assert "FAILED: a gate failed" in out and "GateFailed" in out and "thresholds" in out
    assert Registry.open(stack.registry, create=False).state(model).stage_of(1) == "none"  # registered, blocked


def test_ci_retrain_exits_1_when_the_reviewer_rejects(stack: Stack, launched: Launched) -> None:
    from prefect.flow_runs import resume_flow_run

    from tests.flows.conftest import wait_for_paused

    model = launched.models["reject"]
    paused = wait_for_paused(model, timeout=420)
    stack.track_worker_children()
    resume_flow_run(paused.id, run_input={"approve": False, "reviewer": "x", "comment": "no"})
    code, out = launched.result("reject")
    assert code == 1, out[-4000:]
    assert "waiting for a reviewer" in out
    assert "FAILED: the reviewer rejected the version" in out and "rejected by x: no" in out
    assert Registry.open(stack.registry, create=False).state(model).stage_of(1) == "staging"  # not production


def test_suspended_approval_resumes_in_a_new_process_without_a_second_version(stack: Stack, launched: Launched) -> None:
    from prefect.flow_runs import resume_flow_run

    from tests.flows.conftest import wait_for_paused

    model = launched.models["suspend"]
    suspended = wait_for_paused(model, timeout=420)
    assert suspended.state.name == "Suspended"
    stack.track_worker_children()
    resume_flow_run(suspended.id, run_input={"approve": True, "reviewer": "ivy", "comment": "after the weekend"})
    code, out = launched.result("suspend")
    assert code == 0, out[-4000:]
    reg = Registry.open(stack.registry, create=False)
    assert reg.latest_version(model) == 1 and reg.state(model).production == 1
    types = [e.type for e in reg.history(model)]
    # The re-run found its version (idempotent registration) and did not log anything twice.
    assert types.count("registered") == 1 and types.count("approved") == 1
    assert types.count("validated") == 0  # every gate verdict came in the manifest, with the version
    approved = next(e for e in reg.history(model) if e.type == "approved")
    assert (approved.actor, approved.reason, approved.run_id) == ("ivy", "after the weekend", str(suspended.id))


def test_ci_retrain_exits_3_when_the_wait_times_out(stack: Stack, launched: Launched) -> None:
    model = launched.models["timeout"]
    code, out = launched.result("timeout")
    assert code == 3, out[-4000:]
    assert "TIMED OUT after 1s" in out and "it goes on" in out
    # The run itself went on (and fails on the missing dataset): wait for it, nothing is left running.
    (run,) = [r for r in runs_of("retrain-model/retrain") if r.parameters["config"]["model_name"] == model]
    final = wait_final(run.id, timeout=420)
    stack.track_worker_children()
    assert final.state.is_failed() and "DatasetError" in (final.state.message or "")


def test_ci_retrain_local_mode(launched: Launched) -> None:
    model = launched.models["local"]
    code, out = launched.result("local")
    assert code == 0, out[-4000:]
    assert f"checked: models:/{model}/1 is staging" in out
    code, out = launched.result("local-bad")
    assert code == 1, out[-4000:]
    assert "FAILED: a gate failed" in out and "data-quality gate failed" in out


def test_a_job_variable_cannot_widen_the_workers_allow_list(stack: Stack, launched: Launched) -> None:
    code, out = launched.result("widen")
    assert code != 0, out[-4000:]
    (run,) = [
        r for r in runs_of("retrain-model/retrain") if r.parameters["config"]["model_name"] == launched.models["widen"]
    ]
    assert run.job_variables["env"]["PMR_TRAINER_MODULES"] == "tripwire_trainer"  # the override did reach the run
    assert run.state.is_failed() and "'trainer_modules' in the worker policy" in (run.state.message or "")
    assert not (stack.tmp / "tripwire").exists()  # the module was never imported
    reg = Registry.open(stack.registry, create=False)
    assert launched.models["widen"] not in reg.models()
