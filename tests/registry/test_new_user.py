"""What a new user tripped over (issue 15): one lineage for every registration path, unreadable datasets refused,
a hint for ``@latest``, and reads that never create the registry directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import skops.io as sio
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.cli import main
from prefect_model_registry.registry.core.lineage import fingerprint_bytes
from prefect_model_registry.registry.errors import DatasetUnavailable, InvalidURI
from prefect_model_registry.registry.models import Lineage
from tests.conftest import snapshot


def pmr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


@pytest.fixture
def fitted() -> LogisticRegression:
    X, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(X, y)


def test_api_and_cli_record_the_same_lineage(reg: Registry, location: str, fitted, tmp_path: Path, capsys) -> None:
    data = tmp_path / "train.csv"
    data.write_text("x,y\n1,0\n2,1\n")
    api = reg.register_model("m", fitted, VersionInfo(lineage=Lineage(dataset_uri=str(data))))
    path = tmp_path / "model.skops"
    sio.dump(fitted, path)
    code, out, _ = pmr(capsys, "--registry", location, "--json", "register", "m", str(path), "--dataset", str(data))
    assert code == 0
    cli = json.loads(out)["lineage"]
    recorded = api.lineage.model_dump(mode="json")
    for field in ("dataset_fingerprint", "python_version", "packages", "code_version", "code_dirty"):
        assert recorded[field] == cli[field], field
    assert recorded["dataset_fingerprint"] == fingerprint_bytes(data.read_bytes())
    assert recorded["python_version"] and "scikit-learn" in recorded["packages"]


@pytest.mark.parametrize("dataset", ["missing.csv", "s3://no-such-bucket-pmr/train.csv"])
def test_unreadable_dataset_is_refused_before_writing(
    reg: Registry, location: str, fitted, tmp_path: Path, capsys, dataset: str, request: pytest.FixtureRequest
) -> None:
    if "://" in dataset:
        request.getfixturevalue("s3_server")  # the loopback S3 server answers, never a real endpoint
    uri = str(tmp_path / dataset) if "://" not in dataset else dataset
    before = snapshot(reg)
    with pytest.raises(DatasetUnavailable, match="cannot read dataset"):
        reg.register_model("m", fitted, VersionInfo(lineage=Lineage(dataset_uri=uri)))
    path = tmp_path / "model.skops"
    sio.dump(fitted, path)
    code, _, err = pmr(capsys, "--registry", location, "register", "m", str(path), "--dataset", uri)
    assert code == 2 and "cannot read dataset" in err and "allow-missing-dataset" in err.replace("_", "-")
    assert snapshot(reg) == before

    args = ["--registry", location, "--json", "register", "m", str(path), "--dataset", uri]
    code, out, err = pmr(capsys, *args, "--allow-missing-dataset")
    assert code == 0 and "warning" in err and "cannot read dataset" in err
    lineage = json.loads(out)["lineage"]
    assert lineage["dataset_uri"] == uri and lineage["dataset_fingerprint"] is None
    with pytest.warns(UserWarning, match="without a dataset fingerprint"):
        mv = reg.register_model("m", fitted, VersionInfo(lineage=Lineage(dataset_uri=uri)), allow_missing_dataset=True)
    assert mv.version == 2


def test_at_latest_gets_a_hint(reg: Registry, location: str, fitted, capsys) -> None:
    reg.register_model("churn", fitted)
    with pytest.raises(InvalidURI, match="churn/latest"):
        reg.resolve("churn@latest")
    code, _, err = pmr(capsys, "--registry", location, "show", "churn@latest")
    assert code == 2 and "churn/latest" in err and "Traceback" not in err
    assert reg.resolve("churn/latest").version == 1


def test_reads_never_create_the_registry_directory(tmp_path: Path, fitted, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PMR_REGISTRY_URI", raising=False)
    reg = Registry.open()
    assert reg.models() == [] and reg.overview() == []
    code, out, _ = pmr(capsys, "--json", "models")
    assert code == 0 and json.loads(out) == []
    assert not (tmp_path / ".pmr").exists(), "a read created the registry directory"
    reg.register_model("m", fitted)
    assert (tmp_path / ".pmr" / "registry").is_dir()
    assert Registry.open().models() == ["m"]


def test_missing_directory_with_create_false_is_an_error(tmp_path: Path) -> None:
    from prefect_model_registry.registry.errors import BucketNotFound

    with pytest.raises(BucketNotFound):
        Registry.open(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere").exists()
