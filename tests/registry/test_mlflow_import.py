"""Import from a real MLflow registry (issue 12): a sqlite-backed ``mlflow server`` seeded with MLflow's client.

MLflow runs from its own virtual environment (``benchmarks/mlflow_env.py``: its pins need not agree with
Prefect's); the import talks to it over MLflow's REST API, as it would to a team's tracking server.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.errors import ArtifactLocationRefused, InvalidMetadata, StoreUnavailable
from prefect_model_registry.registry.interop.mlflow_import import import_mlflow
from prefect_model_registry.registry.maintenance.verify import verify
from tests.conftest import skip_unless_ci, snapshot
from tests.reaper import guard
from tests.registry.test_cli import pmr
from tests.seaweed import _free_port

SEED = Path(__file__).with_name("mlflow_seed.py")


def _mlflow_python() -> Path:
    from benchmarks.mlflow_env import mlflow_python

    try:
        return mlflow_python()
    except (subprocess.CalledProcessError, OSError) as exc:
        skip_unless_ci(f"cannot build the MLflow environment: {exc}")
        raise


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow")
    with _seeded_server(root, "--artifacts-destination", str(root / "artifacts")) as url:
        yield url


@pytest.fixture(scope="module")
def mlflow_local_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server that does not proxy artifacts: its download URIs are paths in the directory it names."""
    root = tmp_path_factory.mktemp("mlflow-local")
    artifacts = root / "mlruns"
    args = ("--default-artifact-root", str(artifacts), "--no-serve-artifacts")
    with _seeded_server(root, *args, seed=("--fraud-only",)) as url:
        yield url, artifacts


@contextlib.contextmanager
def _seeded_server(root: Path, *artifact_args: str, seed: tuple[str, ...] = ()) -> Iterator[str]:
    """``mlflow server`` on a sqlite store in ``root``, seeded by ``mlflow_seed.py``, stopped on exit."""
    python = _mlflow_python()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "GIT_PYTHON_REFRESH": "quiet"}
    log = (root / "server.log").open("wb")
    server = subprocess.Popen(
        [
            str(python), "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            *artifact_args,
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    guard(server.pid)  # its whole process group (uvicorn, job runners) dies with this test process
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(1)
        command = [str(python), str(SEED), url, *seed]
        seeded = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert seeded.returncode == 0, seeded.stderr[-3000:]
        yield url
    finally:
        _stop_group(server)
        log.close()


def _stop_group(server: subprocess.Popen[bytes]) -> None:
    """Stop the server and every process it started (MLflow spawns workers and job runners)."""
    for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(server.pid, 0)
            except ProcessLookupError:
                server.wait()
                return
            server.poll()
            time.sleep(0.2)


def test_import_reproduces_models_versions_stages_aliases_and_tags(mlflow_server: str, reg: Registry) -> None:
    report = import_mlflow(reg, mlflow_server, actor="migration-bot")
    assert set(report) == {"churn", "fraud"}
    assert report["churn"].registered == {"1": 1, "2": 2, "3": 3} and report["fraud"].registered == {"1": 1, "2": 2}
    churn, fraud = reg.state("churn"), reg.state("fraud")
    assert churn.stages == {1: "archived", 2: "production", 3: "staging"}
    assert churn.aliases == {"champion": 2, "challenger": 3}
    assert fraud.production == 2 and fraud.aliases == {"prod": 2}
    assert churn.model_description == "predicts churn within 90 days"
    v2 = reg.view("churn", 2)
    assert v2.description == "the Q3 model" and v2.tags["validated_by"] == "dana"
    assert v2.tags["mlflow.version"] == "2" and v2.tags["mlflow.imported_by"] == "migration-bot"
    assert v2.metrics == {"roc_auc": 0.9, "accuracy": pytest.approx(0.85)} and v2.params["C"] == "2.0"
    assert v2.artifact.format == "skops" and v2.lineage.copied_from == f"mlflow+{mlflow_server}#models:/churn/2"
    assert v2.lineage.packages.get("scikit-learn")
    registered = [e for e in reg.history("churn") if e.type == "registered"]
    assert [e.version for e in registered] == [1, 2, 3]  # oldest first
    assert registered[1].at == v2.created_at and registered[1].actor == v2.created_by != "migration-bot"
    assert registered[0].at < registered[1].at < registered[2].at  # MLflow's own creation times
    model = reg.load("churn@champion")  # the real model, loaded through the safe skops loader
    X, _ = load_iris(return_X_y=True)
    assert model.C == 2.0 and np.asarray(model.predict(X)).shape == (150,)
    assert verify(reg).ok, verify(reg).findings

    before = snapshot(reg)
    again = import_mlflow(reg, mlflow_server, actor="migration-bot")  # a second import adds nothing
    assert all(not r.registered and not r.changes for r in again.values())
    assert again["churn"].existing == {"1": 1, "2": 2, "3": 3}
    assert snapshot(reg) == before


def test_a_later_import_brings_only_what_changed_and_the_cli(
    mlflow_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = str(tmp_path / "reg")
    code, out, _ = pmr(
        capsys, "--registry", location, "import-mlflow", "--tracking-uri", mlflow_server, "--model", "churn"
    )
    assert code == 0 and "churn" in out and "fraud" not in out
    python = _mlflow_python()
    env = {**os.environ, "GIT_PYTHON_REFRESH": "quiet"}
    added = subprocess.run([str(python), str(SEED), mlflow_server, "--extra"], env=env, capture_output=True, text=True)
    assert added.returncode == 0, added.stderr[-3000:]
    code, out, _ = pmr(capsys, "--registry", location, "--json", "import-mlflow", "--tracking-uri", mlflow_server)
    assert code == 0
    done = json.loads(out)
    assert done["churn"]["registered"] == {"4": 4} and done["churn"]["changes"] == ["alias challenger -> v4"]
    assert done["fraud"]["registered"] == {"1": 1, "2": 2}
    reg = Registry.open(location)
    assert reg.state("churn").aliases == {"champion": 2, "challenger": 4} and reg.latest_version("churn") == 4
    code, _, err = pmr(capsys, "--registry", location, "import-mlflow", "--tracking-uri", "sqlite:///mlflow.db")
    assert code == 2 and "mlflow server" in err


def test_unreachable_or_bad_tracking_uri_is_a_typed_error(tmp_path: Path) -> None:
    reg = Registry.open(tmp_path / "reg")
    with pytest.raises(InvalidMetadata):
        import_mlflow(reg, "file:///tmp/mlruns")
    with pytest.raises(StoreUnavailable):
        import_mlflow(reg, f"http://127.0.0.1:{_free_port()}")
    assert not list(reg.store.list(""))


def test_artifacts_stored_outside_the_servers_proxy_need_an_allowed_root(
    mlflow_local_artifacts: tuple[str, Path], tmp_path: Path
) -> None:
    url, artifacts = mlflow_local_artifacts
    reg = Registry.open(tmp_path / "reg")
    with pytest.raises(ArtifactLocationRefused, match="--allow-artifact-root"):
        import_mlflow(reg, url, models=["fraud"])  # the server names local paths: not read by default
    assert not list(reg.store.list(""))
    report = import_mlflow(reg, url, models=["fraud"], allowed_roots=[str(artifacts)])
    assert report["fraud"].registered == {"1": 1, "2": 2} and not report["fraud"].skipped
    model = reg.load("fraud@prod")
    X, _ = load_iris(return_X_y=True)
    assert model.C == 0.2 and np.asarray(model.predict(X)).shape == (150,)
