"""Benchmark worker for MLflow's model registry (runs in the MLflow virtual environment, see mlflow_env.py).

MLflow as its users run it with object storage: a sqlite backend store (tracking and registry) and run
artifacts in the same S3 server as the other side (``MLFLOW_S3_ENDPOINT_URL``).

Usage: ``python _worker_mlflow.py DB_PATH ARTIFACT_ROOT`` (commands on stdin, see ``_worker.py``).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _worker import CONTENDERS, MIB, contend, serve, timed

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402

DB, ARTIFACTS = sys.argv[1], sys.argv[2]
URI = f"sqlite:///{DB}"
client = MlflowClient(tracking_uri=URI, registry_uri=URI)
mlflow.set_tracking_uri(URI)
mlflow.set_registry_uri(URI)
_tmp = Path(tempfile.mkdtemp(prefix="pmr-bench-mlflow-"))
_run: dict[str, str] = {}


def _run_id() -> str:
    if "id" not in _run:
        name = "bench"
        exp = client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp else client.create_experiment(name, artifact_location=ARTIFACTS)
        _run["id"] = client.create_run(exp_id).info.run_id
        _run["uri"] = client.get_run(_run["id"]).info.artifact_uri
    return _run["id"]


def _model(name: str) -> None:
    try:
        client.create_registered_model(name)
    except mlflow.exceptions.MlflowException:
        pass  # already there (the worker is set up once per model)


def _upload_and_create(name: str, payload: bytes) -> str:
    """What registering a 1 MiB model costs a user: log the artifact to the run, then create the version."""
    run_id = _run_id()
    sub = f"m{time.time_ns()}"
    local = _tmp / sub
    local.mkdir()
    (local / "model.bin").write_bytes(payload)
    client.log_artifacts(run_id, str(local), artifact_path=sub)
    return client.create_model_version(name, f"{_run['uri']}/{sub}", run_id=run_id).version


def _create_tiny(name: str) -> str:
    run_id = _run_id()
    return client.create_model_version(name, f"{_run['uri']}/tiny", run_id=run_id).version


def setup(name: str, versions: int) -> dict[str, Any]:
    """Seed ``name`` to ``versions`` tiny versions plus one 1 MiB version in production carrying ``champion``."""
    _model(name)
    t0 = time.perf_counter()
    for _ in range(versions):
        _create_tiny(name)
    seeded = time.perf_counter() - t0
    target = _upload_and_create(name, os.urandom(MIB))
    client.transition_model_version_stage(name, target, "Production", archive_existing_versions=True)
    client.set_registered_model_alias(name, "champion", target)
    return {"seed_s": seeded, "target": int(target)}


def register_1mib(name: str, repeats: int) -> list[float]:
    """Upload 1 MiB and create a version from it, ``repeats`` times."""
    payloads = [os.urandom(MIB) for _ in range(repeats)]
    return [timed(lambda p=p: _upload_and_create(name, p)) for p in payloads]


def resolve_alias(name: str, repeats: int) -> list[float]:
    """Resolve ``champion`` to its version."""
    return [timed(lambda: client.get_model_version_by_alias(name, "champion")) for _ in range(repeats)]


def resolve_download(name: str, repeats: int) -> list[float]:
    """Resolve ``champion`` and download its 1 MiB artifact into memory."""

    def once() -> None:
        mv = client.get_model_version_by_alias(name, "champion")
        dst = tempfile.mkdtemp(dir=_tmp)
        local = mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=dst)
        data = (Path(local) / "model.bin").read_bytes()
        assert len(data) == MIB

    return [timed(once) for _ in range(repeats)]


def set_alias(name: str, repeats: int, versions: list[int]) -> list[float]:
    """Move alias ``canary`` between versions (every call is a real change)."""
    return [
        timed(lambda i=i: client.set_registered_model_alias(name, "canary", versions[i % len(versions)]))
        for i in range(repeats)
    ]


def new_versions(name: str, count: int) -> list[int]:
    """Create ``count`` tiny versions (untimed preparation) and return their numbers."""
    return [int(_create_tiny(name)) for _ in range(count)]


def promote(name: str, versions: list[int]) -> list[float]:
    """Put each version in production, archiving the previous production version (one call in MLflow)."""
    return [
        timed(lambda v=v: client.transition_model_version_stage(name, v, "Production", archive_existing_versions=True))
        for v in versions
    ]


def list_all(name: str, repeats: int) -> dict[str, Any]:
    """List every version of ``name`` (all pages)."""
    count = 0

    def once() -> None:
        nonlocal count
        found, token = [], None
        while True:
            page = client.search_model_versions(f"name='{name}'", max_results=10_000, page_token=token)
            found.extend(page)
            token = page.token
            if not token:
                break
        count = len(found)

    return {"ms": [timed(once) for _ in range(repeats)], "count": count}


def sequential(name: str, count: int) -> dict[str, Any]:
    """Create ``count`` versions one after the other; versions per second."""
    _model(name)
    t0 = time.perf_counter()
    for _ in range(count):
        _create_tiny(name)
    return {"per_s": count / (time.perf_counter() - t0)}


def prepare_contention(name: str) -> None:
    """Create the model the contenders race on (and the shared run)."""
    _model(name)
    _run_id()


def contender(name: str, start_at: float) -> dict[str, Any]:
    """One of :data:`CONTENDERS` processes registering versions of ``name`` at once."""
    _run_id()
    return contend(lambda _i: _create_tiny(name), start_at)


def check_dense(name: str, expected: int) -> dict[str, Any]:
    """Whether ``name`` holds exactly versions 1..expected."""
    found = sorted(int(mv.version) for mv in client.search_model_versions(f"name='{name}'", max_results=10_000))
    return {"count": len(found), "dense": found == list(range(1, expected + 1)), "contenders": CONTENDERS}


if __name__ == "__main__":
    serve(
        {
            f.__name__: f
            for f in (
                setup,
                register_1mib,
                resolve_alias,
                resolve_download,
                set_alias,
                new_versions,
                promote,
                list_all,
                sequential,
                prepare_contention,
                contender,
                check_dense,
            )
        }
    )
