"""A deployment's run reaches only what the worker policy allows: run parameters and job variables cannot widen it.

Each attack first shows what its payload does where nothing restricts it (today's code paths, or a flow called in a
person's own process), then runs the same parameters as a *deployment's* flow run (created on the test Prefect
server and executed in this process, so its ``deployment_id`` is real) and checks the refusal, and that nothing
ran, was read or was written.
"""

from __future__ import annotations

import importlib
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import flow as flow_decorator

from prefect_model_registry.flows.core import training, trust
from prefect_model_registry.flows.core.approval import ApprovalPolicy
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.errors import ConfigError, EstimatorError
from prefect_model_registry.flows.pipeline import retrain, task_runner_for
from prefect_model_registry.flows.scoring import score_batch
from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.core.policy import ApprovalRules
from tests.flows.conftest import BATCH1

pytestmark = pytest.mark.usefixtures("prefect_api")

NO_APPROVAL = {"required_for": []}


@pytest.fixture
def worker_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write the worker policy file this process reads (its fixed path, pointed at a scratch file)."""
    path = tmp_path / "etc" / "worker-policy.yaml"
    monkeypatch.setattr(trust, "POLICY_PATHS", (path,))

    def write(**policy: Any) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(policy))
        return path

    return write


def as_deployment(flow: Any, parameters: dict[str, Any]) -> Any:
    """Run ``flow`` as a deployment's flow run (created on the server, executed here); its final state."""
    from prefect import get_client
    from prefect.flow_engine import run_flow

    deployment_id = flow.to_deployment(name=f"trust-{uuid.uuid4().hex[:8]}").apply()
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
    return run_flow(flow, flow_run=run, parameters=run.parameters, return_type="state")


@pytest.fixture
def opened() -> Iterator[list[str]]:
    """Paths this process opens while the test runs (an audit hook; hooks cannot be removed, so it is gated)."""
    seen: list[str] = []
    active = [True]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if active[0] and event == "open" and isinstance(args[0], str):
            seen.append(args[0])

    sys.addaudithook(hook)
    yield seen
    active[0] = False


def config(tmp_path: Path, model_name: str, **fields: Any) -> dict[str, Any]:
    return {
        "model_name": model_name,
        "dataset_uri": BATCH1,
        "registry": str(tmp_path / "registry"),
        "approval": NO_APPROVAL,
        **fields,
    }


def test_a_deployment_run_inside_the_roots_goes_to_production(
    tmp_path: Path, model_name: str, worker_policy: Callable[..., Path]
) -> None:
    worker_policy(roots=[str(Path(BATCH1).parent), str(tmp_path / "registry")])
    state = as_deployment(retrain, {"config": config(tmp_path, model_name)})
    assert state.is_completed(), state.message
    assert Registry.open(str(tmp_path / "registry")).state(model_name).production == 1


@pytest.mark.parametrize("field", ["dataset_uri", "suite", "thresholds", "registry"])
def test_every_location_outside_the_roots_is_refused_before_it_is_read(
    tmp_path: Path, model_name: str, worker_policy: Callable[..., Path], opened: list[str], field: str
) -> None:
    canary = tmp_path / "home" / "credentials"
    canary.parent.mkdir()
    canary.write_text("[default]\naws_secret_access_key = hunter2\n")
    outside = str(canary.parent / "registry") if field == "registry" else str(canary)
    worker_policy(roots=[str(Path(BATCH1).parent), str(tmp_path / "registry")])
    # Unrestricted (today's deployments behaved so), the run reads the file it is given.
    if field == "dataset_uri":  # the old data-quality report showed the file's lines
        assert "hunter2" in training.read_dataset(str(canary)).frame.to_string()
    else:
        canary.read_text()
    assert str(canary) in opened
    opened.clear()

    state = as_deployment(retrain, {"config": config(tmp_path, model_name, **{field: outside})})
    assert state.is_failed()
    assert f"config field {field!r}" in state.message and "worker-policy.yaml" in state.message
    assert not any(str(canary.parent) in path for path in opened)  # nothing read (or created) there
    assert not (tmp_path / "registry").exists() and not (canary.parent / "registry").exists()


def test_a_symlink_inside_a_root_is_judged_by_its_target(
    tmp_path: Path, model_name: str, worker_policy: Callable[..., Path], opened: list[str]
) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text(Path(BATCH1).read_text())
    root = tmp_path / "data"
    root.mkdir()
    (root / "latest.csv").symlink_to(secret)
    worker_policy(roots=[str(root), str(tmp_path / "registry")])
    opened.clear()
    state = as_deployment(retrain, {"config": config(tmp_path, model_name, dataset_uri=str(root / "latest.csv"))})
    assert state.is_failed() and "config field 'dataset_uri'" in state.message
    assert str(secret) not in opened and str(root / "latest.csv") not in opened


def test_s3_locations_must_share_bucket_and_whole_prefix_segments() -> None:
    loaded = trust.Loaded(trust.WorkerPolicy(roots=["s3://team/registry", "/srv/data"]), None)
    trust.check_location("registry", "s3://team/registry/churn", loaded)
    trust.check_location("registry", "s3://team/registry", loaded)
    for outside in (
        "s3://team/registry-other",
        "s3://teamx/registry",
        "s3://team/registry/../secrets",
        "/srv/database",
    ):
        with pytest.raises(trust.NotAllowed, match=r"outside|plain"):
            trust.check_location("registry", outside, loaded)
    with pytest.raises(trust.NotAllowed, match="only s3:// and local paths"):
        trust.check_location("dataset_uri", "http://169.254.169.254/latest", loaded)


def test_no_policy_file_means_a_deployment_run_may_reach_nothing(
    tmp_path: Path, model_name: str, worker_policy: Callable[..., Path]
) -> None:
    state = as_deployment(retrain, {"config": config(tmp_path, model_name)})
    assert state.is_failed() and "outside the locations this worker allows (none)" in state.message
    assert "no file at" in state.message
    assert not (tmp_path / "registry").exists()


def test_a_broken_policy_file_refuses_instead_of_allowing(
    tmp_path: Path, model_name: str, worker_policy: Callable[..., Path]
) -> None:
    worker_policy(roots="/", trainer_modules=["os"], everything=True)
    state = as_deployment(retrain, {"config": config(tmp_path, model_name)})
    assert state.is_failed() and "is unusable" in state.message


def test_an_estimator_that_is_not_an_estimator_class_is_refused_before_it_is_called(tmp_path: Path) -> None:
    tripwire = tmp_path / "tripwire"
    payload = {"args": ["touch", str(tripwire)]}
    path = "sklearn.utils._testing.check_output"  # subprocess.check_output, re-exported into scikit-learn
    # What the old lookup (getattr on the named module, then call it with the run's params) did:
    module, _, name = path.rpartition(".")
    getattr(importlib.import_module(module), name)(**payload)
    assert tripwire.exists()
    tripwire.unlink()

    for bad in (path, "sklearn.utils.discovery.import_module", "sklearn.utils.Bunch", "os.system", "sklearn"):
        with pytest.raises(EstimatorError):
            training.build_estimator(bad, payload, preprocessing="none")
        cfg = RetrainConfig(model_name="m", dataset_uri=BATCH1, estimator=bad, params=payload)
        with pytest.raises(ConfigError, match="config field 'estimator'"):
            cfg.preflight()
    assert not tripwire.exists()
    # The public path and the private one name the same class and both work.
    for good in ("sklearn.linear_model.LogisticRegression", "sklearn.linear_model._logistic.LogisticRegression"):
        assert training.resolve_estimator(good).__name__ == "LogisticRegression"


def test_a_job_variable_cannot_widen_the_trainer_list(
    tmp_path: Path, model_name: str, worker_policy: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "code" / "tripwire_trainer.py"
    package.parent.mkdir()
    tripwire = tmp_path / "imported"
    package.write_text(f"open({str(tripwire)!r}, 'w').write('ran')\ndef fit(frame, target, params):\n    pass\n")
    monkeypatch.syspath_prepend(str(package.parent))
    # A job variable sets the flow-run process's environment: this is what `--job-variable env=...` does.
    monkeypatch.setenv("PMR_TRAINER_MODULES", "tripwire_trainer")
    worker_policy(roots=[str(Path(BATCH1).parent), str(tmp_path / "registry")], trainer_modules=["team.train"])
    state = as_deployment(retrain, {"config": config(tmp_path, model_name, trainer="tripwire_trainer:fit")})
    assert state.is_failed() and "'trainer_modules' in the worker policy" in state.message
    assert not tripwire.exists() and "tripwire_trainer" not in sys.modules
    # In a person's own process the environment is theirs, and the same module is imported.
    training.load_trainer("tripwire_trainer:fit")
    assert tripwire.exists()


def test_a_trainer_must_be_defined_in_the_listed_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "team_reexport.py").write_text("from subprocess import check_output as fit\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(training.TrainerError, match="re-exported"):
        training.load_trainer("team_reexport:fit", ["team_reexport"])
    with pytest.raises(training.TrainerError, match="not allowed"):  # a listed package admits no submodule
        training.load_trainer("team_reexport.sub:fit", ["team_reexport"])


def test_a_dask_address_off_the_list_is_never_contacted(
    tmp_path: Path, model_name: str, worker_policy: Callable[..., Path]
) -> None:
    import dask

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    address = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    contacts: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            contacts.append(conn)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        sweep = {"task_runner": "dask", "dask_address": address, "candidates": [{"C": 0.1}, {"C": 1.0}]}
        # Unrestricted, the sweep connects to whatever scheduler it is given (and would send it the data).
        unrestricted = RetrainConfig.parse(config(tmp_path, model_name, **sweep))
        try:
            with dask.config.set({"distributed.comm.timeouts.connect": "2s"}), task_runner_for(unrestricted) as runner:
                runner.client  # noqa: B018  (prefect-dask connects on first use)
        except OSError:
            pass  # our listener is no scheduler: the point is that it was contacted
        assert contacts
        contacts.clear()

        worker_policy(roots=[str(Path(BATCH1).parent), str(tmp_path / "registry")], dask_addresses=["tcp://x:8786"])
        state = as_deployment(retrain, {"config": config(tmp_path, model_name, **sweep)})
        assert state.is_failed() and "config field 'dask_address'" in state.message
        assert not contacts
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_a_run_cannot_name_its_own_reviewers(
    tmp_path: Path, model_name: str, worker_policy: Callable[..., Path]
) -> None:
    worker_policy(roots=[str(Path(BATCH1).parent), str(tmp_path / "registry")])
    approval = {"required_for": ["production"], "reviewers": ["mallory"], "first_version_exempt": False}
    state = as_deployment(retrain, {"config": config(tmp_path, model_name, approval=approval)})
    assert state.is_failed() and "approval.reviewers" in state.message
    assert not (tmp_path / "registry").exists()  # refused before anything was trained or written


def test_a_run_never_creates_or_loosens_the_policy(
    tmp_path: Path, model_name: str, worker_policy: Callable[..., Path]
) -> None:
    registry = str(tmp_path / "registry")
    minimum = {"stages": ["production"], "four_eyes": True, "first_version_exempt": False}
    worker_policy(roots=[str(Path(BATCH1).parent), registry], approval=minimum)
    # In a person's own process the run's policy becomes the new model's (how the pipeline always behaved).
    own = retrain(RetrainConfig.parse(config(tmp_path, f"{model_name}-own")), return_state=True)
    assert own.is_completed()
    assert Registry.open(registry).policy(f"{model_name}-own") == ApprovalRules(stages=[])

    # A deployment's run on a new model records the worker's minimum, whatever it asks for, and its "no
    # approval" does not skip the minimum's reviewer: the run waits, times out and the version stays staged.
    loose = ApprovalPolicy(required_for=[], timeout_seconds=1, poll_interval_seconds=1).model_dump()
    state = as_deployment(retrain, {"config": config(tmp_path, model_name, approval=loose)})
    assert state.is_failed()
    reg = Registry.open(registry)
    assert reg.history(model_name)[-1].type == "approval_timed_out"
    assert reg.policy(model_name) == ApprovalRules(**minimum)
    assert reg.state(model_name).production is None and reg.state(model_name).stage_of(1) == "staging"


def test_score_batch_reads_and_writes_only_inside_the_roots(
    tmp_path: Path, worker_policy: Callable[..., Path], opened: list[str]
) -> None:
    worker_policy(roots=[str(tmp_path / "registry"), str(tmp_path / "in"), str(tmp_path / "out")])
    cases = {
        "input_uri": {"input_uri": str(Path(BATCH1)), "output_uri": str(tmp_path / "out" / "s.csv")},
        "output_uri": {"input_uri": str(tmp_path / "in" / "b.csv"), "output_uri": str(tmp_path / "elsewhere.csv")},
    }
    for field, uris in cases.items():
        params = {"model_uri": "models:/m@production", "registry": str(tmp_path / "registry"), **uris}
        state = as_deployment(score_batch, params)
        assert state.is_failed() and f"config field {field!r}" in state.message
    assert str(Path(BATCH1)) not in opened and not (tmp_path / "elsewhere.csv").exists()


def test_lifecycle_flows_open_only_an_allowed_registry(tmp_path: Path, worker_policy: Callable[..., Path]) -> None:
    from prefect_model_registry.flows.lifecycle import rollback_model

    worker_policy(roots=[str(tmp_path / "registry")])
    state = as_deployment(rollback_model, {"model_name": "m", "reason": "x", "registry": str(tmp_path / "other")})
    assert state.is_failed() and "config field 'registry'" in state.message
    assert not (tmp_path / "other").exists()


def test_the_policy_path_is_not_taken_from_the_environment() -> None:
    code = "import prefect_model_registry.flows.core.trust as t; print([str(p) for p in t.POLICY_PATHS])"
    env = {"PMR_WORKER_POLICY": "/tmp/evil.yaml", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "evil" not in out and "worker-policy.yaml" in out


def test_a_run_may_narrow_the_reviewers_the_model_lists() -> None:
    loaded = trust.Loaded(trust.WorkerPolicy(), None)
    listed = ApprovalRules(reviewers=["dana", "lee"])
    trust.check_reviewers(["dana"], listed, loaded)
    trust.check_reviewers(None, None, loaded)
    for own, rules in (
        (["mallory"], listed),
        (["dana", "mallory"], listed),
        (["dana"], None),
        (["dana"], ApprovalRules()),
    ):
        with pytest.raises(trust.NotAllowed, match="only narrow"):
            trust.check_reviewers(own, rules, loaded)


def test_a_champions_stored_data_location_outside_the_roots_is_not_read_for_drift(
    tmp_path: Path, model_name: str, worker_policy: Callable[..., Path], opened: list[str]
) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from prefect_model_registry.registry import Lineage, VersionInfo

    # Stored text in the bucket names the champion's training data: here a file outside the worker's roots.
    canary = tmp_path / "home" / "train.csv"
    canary.parent.mkdir()
    canary.write_text(Path(BATCH1).read_text())
    frame = pd.read_csv(BATCH1)
    model = LogisticRegression(max_iter=500).fit(frame.drop(columns=["target"]), frame["target"])
    registry = str(tmp_path / "registry")
    reg = Registry.open(registry)
    info = VersionInfo(lineage=Lineage(dataset_uri=str(canary)))
    reg.register_model(model_name, model, info, actor="someone")
    reg.promote(model_name, 1, "staging", actor="someone", reason="setup")
    reg.promote(model_name, 1, "production", actor="someone", reason="setup")
    worker_policy(roots=[str(Path(BATCH1).parent), registry])
    opened.clear()

    state = as_deployment(retrain, {"config": config(tmp_path, model_name, target_stage="staging")})
    assert state.is_completed(), state.message
    drift = Registry.open(registry).reports(model_name, 2)["drift"]
    assert "outside the worker's roots" in str(drift)
    assert str(canary) not in opened


@flow_decorator(name="team-nightly")
def team_nightly(config: dict[str, Any]) -> Any:
    """A team's own deployed flow that calls the package's retraining as a subflow (the wheel test's shape)."""
    return retrain(config)


def test_a_subflow_of_a_deployment_run_is_held_to_the_worker_policy(
    tmp_path: Path, model_name: str, worker_policy: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The subflow's own run has no deployment_id; it runs inside the deployment's run all the same. Its
    # environment allowing a trainer module does not count, and a location outside the roots is refused.
    monkeypatch.setenv(training.TRAINER_MODULES_ENV, "team.train")
    outside = tmp_path / "elsewhere" / "registry"
    worker_policy(roots=[str(Path(BATCH1).parent), str(tmp_path / "registry")])
    state = as_deployment(team_nightly, {"config": config(tmp_path, model_name, registry=str(outside))})
    assert state.is_failed() and "config field 'registry'" in (state.message or "")
    assert not outside.exists()
    state = as_deployment(team_nightly, {"config": config(tmp_path, model_name, trainer="team.train:fit")})
    assert state.is_failed() and "trainer_modules" in (state.message or "")
    assert not (tmp_path / "registry").exists()
