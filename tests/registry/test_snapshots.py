"""Training-data snapshots: restored byte for byte, stored once, hash-checked, covered by verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from prefect_model_registry.registry import Lineage, Registry, VersionInfo
from prefect_model_registry.registry.core.keys import blob_key
from prefect_model_registry.registry.errors import DatasetUnavailable, IntegrityError, InvalidMetadata
from prefect_model_registry.registry.maintenance.verify import verify
from tests.conftest import snapshot
from tests.registry.test_cli import pmr


def _register(reg: Registry, data: Path, key: str, **kwargs) -> int:
    info = VersionInfo(lineage=Lineage(dataset_uri=str(data)))
    return reg.register_model("churn", LogisticRegression(), info, operation_key=key, **kwargs).version


def test_overwritten_training_data_is_restored_byte_for_byte(reg: Registry, tmp_path: Path) -> None:
    data = tmp_path / "latest.csv"
    monday = b"a,b,target\n1,x,0\n2,,1\n"
    data.write_bytes(monday)
    v1 = _register(reg, data, "monday")
    data.write_bytes(b"a,b,target\n9,y,1\n")  # the nightly job overwrites the file
    v2 = _register(reg, data, "tuesday")
    assert reg.load_dataset(f"models:/churn/{v1}") == monday
    assert reg.load_dataset(f"models:/churn/{v2}") == b"a,b,target\n9,y,1\n"
    mv = reg.get_version("churn", v1)
    assert mv.lineage.dataset_size == len(monday) and mv.lineage.dataset_snapshot_note is None
    assert verify(reg).ok  # snapshots are referenced blobs, never orphans


def test_the_same_data_is_stored_once(reg: Registry, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_bytes(b"a,target\n1,0\n2,1\n" * 100)
    _register(reg, data, "one")
    before = set(reg.store.list("blobs/"))
    _register(reg, data, "two")
    added = set(reg.store.list("blobs/")) - before
    digests = {reg.get_version("churn", v).lineage.dataset_snapshot for v in (1, 2)}
    (digest,) = digests
    assert blob_key(digest) in before and blob_key(digest) not in added  # the data was stored once


def test_a_tampered_snapshot_is_caught_by_verify_and_refused_on_load(reg: Registry, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_bytes(b"a,target\n1,0\n2,1\n")
    _register(reg, data, "k")
    key = blob_key(reg.get_version("churn", 1).lineage.dataset_snapshot)
    reg.store.put(key, b"a,target\n1,1\n2,1\n")
    report = verify(reg)
    assert not report.ok and any("training-data snapshot of v1 is altered" in f.problem for f in report.findings)
    with pytest.raises(IntegrityError, match="altered"):
        reg.load_dataset("models:/churn/1")


def test_limit_and_opt_out_keep_only_the_fingerprint_and_say_why(
    reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "big.csv"
    data.write_bytes(b"a,target\n" + b"1,0\n" * 50)
    monkeypatch.setenv("PMR_SNAPSHOT_MAX_BYTES", "100")
    _register(reg, data, "big")
    monkeypatch.delenv("PMR_SNAPSHOT_MAX_BYTES")
    _register(reg, data, "opted-out", snapshot_dataset=False)
    big, opted = reg.get_version("churn", 1).lineage, reg.get_version("churn", 2).lineage
    assert big.dataset_snapshot is None and "above the 100-byte limit" in big.dataset_snapshot_note
    assert big.dataset_fingerprint and opted.dataset_fingerprint  # the fingerprint is always kept
    assert "opted out" in opted.dataset_snapshot_note
    with pytest.raises(DatasetUnavailable, match="above the 100-byte limit"):
        reg.load_dataset("models:/churn/1")


def test_snapshot_fields_cannot_be_forged_by_the_caller(reg: Registry, tmp_path: Path) -> None:
    before = snapshot(reg)
    forged = VersionInfo(lineage=Lineage(dataset_uri=str(tmp_path), dataset_snapshot="0" * 64))
    with pytest.raises(InvalidMetadata, match="set by the registry"):
        reg.register_model("churn", LogisticRegression(), forged)
    assert snapshot(reg) == before


def test_pmr_dataset_restores_the_file(tmp_path: Path, capsys) -> None:
    data, out = tmp_path / "train.csv", tmp_path / "restored.csv"
    data.write_bytes(b"a,target\n1,0\n2,1\n")
    registry = str(tmp_path / "reg")
    reg = Registry.open(registry)
    _register(reg, data, "k")
    data.write_bytes(b"gone")
    code, stdout, _ = pmr(capsys, "--registry", registry, "--json", "dataset", "churn", "1", "-o", str(out))
    assert code == 0 and out.read_bytes() == b"a,target\n1,0\n2,1\n" and json.loads(stdout)["bytes"] == 17
    code, _, err = pmr(capsys, "--registry", registry, "dataset", "churn", "1", "-o", str(out))
    assert code == 2 and "exists" in err  # never overwrites without --force
