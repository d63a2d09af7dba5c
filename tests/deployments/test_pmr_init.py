"""``pmr init``: a team's starter project (config, suite, thresholds, prefect.yaml, worker policy) outside the package.

The refusals and the generated files need no server; the last test deploys the generated ``prefect.yaml``
unchanged with ``prefect deploy --all`` on the module's stack (tests/deployments/conftest.py) and runs its nightly
retraining once through the stack's process worker, held to the generated worker policy.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.conftest import BUCKET
from tests.deployments.conftest import BIN, POOL, ROOT, Stack, _install_worker_policy, _restore_worker_policy

DATA = ROOT / "flows" / "data" / "breast_cancer_batch1.csv"
#: The five deployments a generated project has, by flow name and the suffix after the model's name.
KINDS = {
    "retrain-nightly": "retrain-model",
    "retrain": "retrain-model",
    "approve": "decide-model",
    "rollback": "rollback-model",
    "score": "score-batch",
}


def pmr(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a person runs it."""
    return subprocess.run(
        [str(BIN / "pmr"), *map(str, args)], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def snapshot(path: Path) -> dict[str, bytes] | None:
    """Every file below ``path`` with its bytes (``None``: ``path`` does not exist)."""
    if not path.exists():
        return None
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# -- refusals: one line, exit 2, nothing written ---------------------------------------------------------------
def _single_class(tmp: Path) -> str:
    frame = pd.read_csv(DATA)
    frame["target"] = 1
    path = tmp / "one-class.csv"
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("non-empty", "is not empty"),
        ("missing-file", "cannot read dataset"),
        ("missing-target", "no column 'churned'"),
        ("single-class", "a single value"),
        ("relative-worker-dir", "is not an absolute path"),
    ],
)
def test_refusals_are_one_line_exit_2_and_write_nothing(case: str, says: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    dataset, target, extra = str(DATA), "target", []
    if case == "non-empty":
        project.mkdir()
        (project / "notes.txt").write_text("the team's own file\n")
    elif case == "missing-file":
        dataset = str(tmp_path / "nope.csv")
    elif case == "missing-target":
        target = "churned"
    elif case == "single-class":
        dataset = _single_class(tmp_path)
    else:
        extra = ["--worker-dir", "team-project"]
    before = snapshot(project)

    done = pmr("init", project, "--dataset", dataset, "--target", target, "--registry", tmp_path / "registry", *extra)

    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert lines[0].startswith("pmr: error:"), lines[0]
    assert done.stdout == ""
    assert snapshot(project) == before
    assert not (tmp_path / "registry").exists()


def test_a_symlink_among_its_files_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "prefect.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    done = pmr("init", project, "--dataset", DATA, "--target", "target", "--force")
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "is a symlink" in line and done.stdout == ""
    assert sorted(p.name for p in project.iterdir()) == ["prefect.yaml"]
    assert not (tmp_path / "elsewhere.yaml").exists()


@pytest.mark.s3
def test_an_unreadable_s3_dataset_is_refused(s3_server: Any, tmp_path: Path) -> None:
    project = tmp_path / "project"
    missing = f"s3://{BUCKET}/{uuid.uuid4().hex}/latest.csv"
    done = pmr("init", project, "--dataset", missing, "--target", "target")
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"cannot read dataset {missing}" in line
    assert not project.exists()


# -- what it writes --------------------------------------------------------------------------------------------
def flow_of(entrypoint: str) -> Any:
    import importlib

    assert entrypoint.startswith("prefect_model_registry.flows.") and ":" not in entrypoint, entrypoint
    module, _, name = entrypoint.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.slow
def test_the_generated_project_parses_and_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.client.schemas.schedules import CronSchedule

    from prefect_model_registry.flows.core import trust
    from prefect_model_registry.flows.core.config import RetrainConfig
    from prefect_model_registry.validations import data_quality

    project = tmp_path / "team"
    project.mkdir()  # an empty directory is fine
    registry = tmp_path / "registry"
    done = pmr("init", project, "--dataset", DATA, "--target", "target", "--registry", registry, "--work-pool", "gpu")
    assert done.returncode == 0, done.stdout + done.stderr
    model = "breast_cancer_batch1"  # derived from the dataset's name
    assert f"wrote {project}" in done.stdout

    # The retraining config: the package's own model accepts it, and its suite, thresholds and estimator load
    # (relative paths are relative to the project directory, where every flow run starts).
    monkeypatch.chdir(project)
    config = RetrainConfig.from_file(project / "retrain.yaml")
    assert (config.model_name, config.target, config.registry) == (model, "target", str(registry))
    assert config.dataset_uri == str(DATA)
    assert config.suite == f"suites/{model}.yaml" and config.thresholds == f"suites/{model}.thresholds.yaml"
    config.preflight()
    # The suite and thresholds are `pmr suite init`'s: the data they came from passes the suite.
    assert data_quality.validate_dataframe(pd.read_csv(DATA), project / config.suite).passed
    assert "by `pmr suite init`" in (project / config.suite).read_text()

    # The worker policy allows exactly what the config reaches (project, data, registry), nothing else.
    policy = trust.WorkerPolicy.model_validate(yaml.safe_load((project / "worker-policy.yaml").read_text()))
    loaded = trust.Loaded(policy, project / "worker-policy.yaml")
    config.check_reach(loaded)
    assert not trust.within(str(tmp_path / "elsewhere.csv"), policy.roots)
    assert policy.trainer_modules == [] and policy.dask_addresses == []

    # prefect.yaml: the installed package's flows, this project's pull step, the pool, every parameter valid.
    spec = yaml.safe_load((project / "prefect.yaml").read_text())
    assert spec["pull"] == [{"prefect.deployments.steps.set_working_directory": {"directory": str(project)}}]
    assert spec["build"] is None and spec["push"] is None
    found = {d["name"]: d for d in spec["deployments"]}
    assert set(found) == {f"{model}-{kind}" for kind in KINDS}
    for kind, flow_name in KINDS.items():
        deployment = found[f"{model}-{kind}"]
        flow = flow_of(deployment["entrypoint"])
        assert flow.name == flow_name
        assert deployment["work_pool"]["name"] == "gpu"
        given = dict(deployment.get("parameters") or {})
        assert given.get("registry", given.get("config", {}).get("registry")) == str(registry)
        signature = inspect.signature(flow.fn)
        required = {n for n, p in signature.parameters.items() if p.default is inspect.Parameter.empty}
        placeholders = {n: True if n == "approve" else 1 if n == "version" else "x" for n in required}
        flow.validate_parameters({**placeholders, **given})
        if "config" in given:
            retrain = RetrainConfig.parse(given["config"])
            assert retrain.model_dump(exclude={"target_stage"}) == config.model_dump(exclude={"target_stage"})
    assert RetrainConfig.parse(found[f"{model}-retrain-nightly"]["parameters"]["config"]).target_stage == "staging"
    assert RetrainConfig.parse(found[f"{model}-retrain"]["parameters"]["config"]).target_stage == "production"
    (schedule,) = found[f"{model}-retrain-nightly"]["schedules"]
    CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    assert found[f"{model}-rollback"]["parameters"]["model_name"] == model
    assert found[f"{model}-score"]["parameters"]["model_uri"] == f"models:/{model}@production"

    # --force writes over a non-empty directory, leaving the team's other files alone; --json is one document.
    (project / "notes.txt").write_text("keep me\n")
    again = pmr("--json", "init", project, "--dataset", DATA, "--target", "target", "--model", "churn", "--force")
    assert again.returncode == 0, again.stdout + again.stderr
    result = json.loads(again.stdout)
    assert result["model"] == "churn" and result["suite"]["suite"] == str(project / "suites" / "churn.yaml")
    assert (project / "notes.txt").read_text() == "keep me\n"
    assert RetrainConfig.from_file(project / "retrain.yaml").model_name == "churn"
    assert (project / "suites" / "churn.yaml").is_file()


# -- deployed as written, run through a worker -----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.s3
def test_the_generated_prefect_yaml_deploys_and_runs_through_a_worker(stack: Stack) -> None:
    from prefect_model_registry.registry import Registry

    project = stack.tmp / "team-project"
    registry = stack.tmp / "team-registry"
    model = f"team-{uuid.uuid4().hex[:6]}"
    done = subprocess.run(
        [
            *(str(BIN / "pmr"), "init", str(project), "--dataset", stack.dataset, "--target", "target"),
            *("--registry", str(registry), "--model", model, "--work-pool", POOL),
        ],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    # As the generated file says: from the project directory, unchanged, every deployment.
    deployed = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"],
        env=stack.env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    for kind, flow_name in KINDS.items():
        assert f"'{flow_name}/{model}-{kind}'" in deployed.stdout, deployed.stdout[-3000:]

    # The worker is held to the generated policy (installed where the worker's Python looks for it).
    saved = _install_worker_policy(yaml.safe_load((project / "worker-policy.yaml").read_text()))
    try:
        run = stack.cli(
            *("prefect", "deployment", "run", f"retrain-model/{model}-retrain-nightly"),
            *("--watch", "--watch-timeout", "300"),
            timeout=360,
        )
        stack.track_worker_children()
    finally:
        _restore_worker_policy(saved)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:] + stack.worker_log()

    reg = Registry.open(str(registry))
    (version,) = reg.versions(model)
    assert reg.state(model).stages == {version.version: "staging"}
    assert version.lineage.dataset_uri == stack.dataset
