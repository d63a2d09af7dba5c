"""The MLflow import streams a version's model file (issue 30): spooled to a private file, registered from there.

The hostile-server fake of ``test_mlflow_trust`` serves the versions (an in-process loopback HTTP server), so a
model file of tens of MiB costs a second. The memory test runs the import in a fresh interpreter and reads its
own high-water mark (``VmHWM``: ``ru_maxrss`` would carry over the forking pytest process's size).
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from sklearn.preprocessing import StandardScaler

from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.core.transfer import Source
from prefect_model_registry.registry.interop import mlflow_reach
from prefect_model_registry.registry.interop.mlflow_import import import_mlflow, zip_files
from prefect_model_registry.registry.interop.mlflow_reach import CHUNK, Budget
from tests.registry.test_mlflow_trust import MLMODEL, FakeMlflow

ROOT = Path(__file__).resolve().parents[2]
SKOPS_FLAVOR = b"flavors:\n  sklearn:\n    pickled_model: model.skops\n    serialization_format: skops\n"
TORCH_FLAVOR = b"flavors:\n  pytorch:\n    model_data: data\n  python_function:\n    python_version: 3.11.7\n"


@pytest.fixture
def mlflow() -> Any:
    fake = FakeMlflow()
    try:
        yield fake
    finally:
        fake.server.close()


@pytest.fixture
def spool_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the import's temporary directories go, to see that they are private and deleted."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


class RegisterSpy:
    """Wraps ``reg.register``: records the artifact each call got, and whether its file is private."""

    def __init__(self, reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[dict[str, Any]] = []
        real = reg.register

        def register(name: str, artifact: Any, *args: Any, **kwargs: Any) -> Any:
            seen: dict[str, Any] = {"artifact": artifact, "fmt": kwargs.get("fmt")}
            if isinstance(artifact, Source) and artifact.path is not None:
                seen["on_disk"] = artifact.path.stat().st_size
                seen["file_mode"] = stat.S_IMODE(artifact.path.stat().st_mode)
                seen["dir_mode"] = stat.S_IMODE(artifact.path.parent.stat().st_mode)
            self.calls.append(seen)
            return real(name, artifact, *args, **kwargs)

        monkeypatch.setattr(reg, "register", register)


def _big_skops(size: int) -> bytes:
    scaler = StandardScaler()
    scaler.mean_ = np.random.default_rng(0).random(size // 8)  # an array of ``size`` bytes in the zip
    return sio.dumps(scaler)


def test_a_model_file_larger_than_a_chunk_is_registered_from_a_private_file_byte_for_byte(
    mlflow: FakeMlflow, tmp_path: Path, spool_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    skops_model = _big_skops(5 * CHUNK // 2)
    weights = os.urandom(3 * CHUNK + 17)
    mlflow.proxied("1", {"MLmodel": SKOPS_FLAVOR, "model.skops": skops_model, "requirements.txt": b"numpy==2.0\n"})
    mlflow.proxied("2", {"MLmodel": TORCH_FLAVOR, "data/model.pth": weights, "requirements.txt": b"torch==2.3\n"})
    reg = Registry.open(tmp_path / "registry")
    spy = RegisterSpy(reg, monkeypatch)
    report = import_mlflow(reg, mlflow.url)["m"]
    assert report.registered == {"1": 1, "2": 2} and not report.skipped

    skops_call, zip_call = spy.calls
    for call in spy.calls:
        artifact = call["artifact"]
        assert isinstance(artifact, Source) and artifact.data is None and artifact.path is not None
        assert artifact.size == call["on_disk"]  # the file as registered, not bytes in memory
        assert artifact.path.is_relative_to(spool_root) and not artifact.path.exists()  # deleted afterwards
        assert call["file_mode"] == 0o600 and call["dir_mode"] == 0o700
    assert skops_call["artifact"].size == len(skops_model) > CHUNK and skops_call["fmt"] == "skops"
    assert zip_call["fmt"] == "bytes"
    assert list(spool_root.iterdir()) == []

    _, stored = reg.load_bytes("models:/m/1")
    assert stored == skops_model  # byte for byte
    assert isinstance(reg.load("models:/m/1"), StandardScaler)
    _, stored = reg.load_bytes("models:/m/2")
    with zipfile.ZipFile(io.BytesIO(stored)) as archive:
        assert archive.namelist() == ["MLmodel", "data/model.pth", "requirements.txt"]
        assert archive.read("data/model.pth") == weights
    assert reg.get_version("m", 2).lineage.packages == {"torch": "2.3"}
    assert reg.get_version("m", 1).lineage.python_version == "unknown (imported from MLflow)"
    assert reg.get_version("m", 2).lineage.python_version == "3.11.7"

    # the zip made from files is the one the import used to make in memory, byte for byte
    files = {"MLmodel": TORCH_FLAVOR, "data/model.pth": weights, "requirements.txt": b"torch==2.3\n"}
    legacy = io.BytesIO()
    with zipfile.ZipFile(legacy, "w", zipfile.ZIP_DEFLATED) as archive:
        for rel in sorted(files):
            archive.writestr(zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0)), files[rel])
    assert stored == legacy.getvalue()
    paths = {}
    for i, (rel, data) in enumerate(files.items()):
        paths[rel] = tmp_path / f"f{i}"
        paths[rel].write_bytes(data)
    zip_files(paths, tmp_path / "again.zip")
    assert (tmp_path / "again.zip").read_bytes() == stored


def test_a_local_artifact_root_is_streamed_too(mlflow: FakeMlflow, tmp_path: Path, spool_root: Path) -> None:
    model_dir = tmp_path / "mlruns" / "1" / "artifacts"
    model_dir.mkdir(parents=True)
    skops_model = _big_skops(2 * CHUNK)
    (model_dir / "MLmodel").write_bytes(SKOPS_FLAVOR)
    (model_dir / "model.skops").write_bytes(skops_model)
    mlflow.uris["1"] = model_dir.as_uri()
    reg = Registry.open(tmp_path / "registry")
    assert import_mlflow(reg, mlflow.url, allowed_roots=[tmp_path / "mlruns"])["m"].registered == {"1": 1}
    assert reg.load_bytes("models:/m/1")[1] == skops_model
    assert list(spool_root.iterdir()) == []


def test_the_budget_stops_a_download_once_exceeded_and_leaves_no_file(
    mlflow: FakeMlflow, tmp_path: Path, spool_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = 2 * CHUNK + 5
    monkeypatch.setenv("PMR_MLFLOW_MAX_VERSION_BYTES", str(budget))
    mlflow.proxied("1", {"MLmodel": MLMODEL, "w.bin": os.urandom(8 * CHUNK)})
    mlflow.listings["1/artifacts"] = [{"path": "MLmodel", "file_size": 10}, {"path": "w.bin", "file_size": 10}]
    mlflow.proxied("2", {"MLmodel": MLMODEL, "w.bin": b"2" * (2 * CHUNK - 100)})  # within it
    most: list[int] = []
    take = Budget.take

    def counting(self: Budget, data: bytes) -> bytes:
        most.append(self.read + len(data))
        return take(self, data)

    monkeypatch.setattr(Budget, "take", counting)
    written: list[Path] = []
    add = mlflow_reach.Spool.add

    def recording(self: mlflow_reach.Spool, rel: str, read: Any) -> Path:
        written.append(self.directory / str(self._made))
        return add(self, rel, read)

    monkeypatch.setattr(mlflow_reach.Spool, "add", recording)
    reg = Registry.open(tmp_path / "registry")
    report = import_mlflow(reg, mlflow.url)["m"]
    assert report.registered == {"2": 1} and "PMR_MLFLOW_MAX_VERSION_BYTES" in report.skipped["1"]
    assert max(most) <= budget + 1  # never a byte read past the first one over the budget
    assert written and not any(path.exists() for path in written)
    assert list(spool_root.iterdir()) == []
    with zipfile.ZipFile(io.BytesIO(reg.load_bytes("models:/m/1")[1])) as archive:
        assert archive.read("w.bin") == b"2" * (2 * CHUNK - 100)


_IMPORT = """
import json, sys, tempfile
from pathlib import Path
from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.core.transfer import Source
from prefect_model_registry.registry.interop.mlflow_import import import_mlflow

def peak() -> int:
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024

warm = Path(tempfile.mkdtemp()) / "warm.bin"
warm.write_bytes(b"w" * 4096)
scratch = Registry.open(Path(tempfile.mkdtemp()) / "scratch")
scratch.register("warm", Source.of_path(warm), fmt="bytes")  # the registration path's imports, loaded once
scratch.flush()
before = peak()
reg = Registry.open(sys.argv[2])
report = import_mlflow(reg, sys.argv[1])
reg.flush()
print(json.dumps({"registered": report["m"].registered, "before": before, "after": peak()}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_importing_a_64_mib_model_does_not_hold_it_in_memory(mlflow: FakeMlflow, tmp_path: Path) -> None:
    size = 64 * 1024**2
    weights = os.urandom(size)
    mlflow.proxied("1", {"MLmodel": TORCH_FLAVOR, "data/model.pth": weights})
    location = tmp_path / "registry"
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT, mlflow.url, str(location)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["registered"] == {"1": 1}
    grown = found["after"] - found["before"]
    assert grown < size // 4, f"peak memory grew by {grown / 1024**2:.1f} MiB importing a 64 MiB model"
    _, stored = Registry.open(location).load_bytes("models:/m/1")
    with zipfile.ZipFile(io.BytesIO(stored)) as archive:
        assert archive.read("data/model.pth") == weights
