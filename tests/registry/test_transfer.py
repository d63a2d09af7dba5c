"""Copy between registries (issue 12): bytes verified by hash, lineage and gates kept, a rerun adds nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.errors import PromotionBlocked, VersionDeleted
from prefect_model_registry.registry.interop.copy import copy_version
from prefect_model_registry.registry.maintenance.verify import verify
from prefect_model_registry.registry.models import Lineage
from tests.registry.test_cli import pmr


@pytest.fixture
def dev(tmp_path: Path) -> Registry:
    data = tmp_path / "train.csv"
    frame = pd.DataFrame({"tenure": [1, 5, 9, 3], "plan": ["a", "b", "a", None], "churned": [1, 0, 0, 1]})
    frame.to_csv(data, index=False)
    reg = Registry.open(tmp_path / "dev")
    passed = {"passed": True, "metrics": {"roc_auc": 0.91}}
    failed = {"passed": False, "failures": ["roc_auc 0.61 < 0.8"]}
    for i, report in enumerate([passed, failed], start=1):
        info = VersionInfo(
            metrics={"roc_auc": 0.9 if i == 1 else 0.61},
            params={"C": i, "nested": {"penalty": "l2"}},
            tags={"team": "growth"},
            description=f"nightly {i}",
            lineage=Lineage(dataset_uri=str(data), flow_run_id=f"run-{i}"),
            reports={"thresholds": report},
        )
        reg.register_model("churn", LogisticRegression(C=float(i)), info)
    reg.tag("churn", 1, {"owner": "dana"})
    data.write_text("overwritten by the next nightly job\n")  # the snapshot, not the file, must travel
    return reg


def test_copy_carries_bytes_lineage_gates_and_snapshot(dev: Registry, location: str) -> None:
    prod = Registry.open(location)
    copied = copy_version(dev, "models:/churn/1", prod, actor="release-bot")
    source = dev.get_version("churn", 1)
    assert copied.artifact.sha256 == source.artifact.sha256 and copied.version == 1
    assert copied.lineage.dataset_fingerprint == source.lineage.dataset_fingerprint
    assert copied.lineage.flow_run_id == "run-1" and copied.lineage.code_version == source.lineage.code_version
    assert copied.lineage.copied_from and copied.lineage.copied_from.startswith(f"{dev.store.uri}#models:/churn/1@")
    assert copied.tags == {"team": "growth", "owner": "dana"} and copied.params["nested"] == {"penalty": "l2"}
    assert prod.load_dataset(copied.uri) == dev.load_dataset(source.uri)
    assert prod.reports("churn", 1) == dev.reports("churn", 1)
    assert copy_version(dev, "models:/churn/1", prod) == copied  # a rerun returns the same version
    assert prod.latest_version("churn") == 1
    blocked = copy_version(dev, "models:/churn/2", prod, name="churn-prod")
    prod.promote("churn-prod", blocked.version, "staging")
    with pytest.raises(PromotionBlocked):  # the failed blocking gate travelled with it
        prod.promote("churn-prod", blocked.version, "production")
    assert prod.state("churn").stages == {}  # stages stay behind: the target decides
    assert verify(prod).ok, verify(prod).findings
    assert prod.load("models:/churn/1").C == 1.0


def test_copy_refuses_a_deleted_version_and_works_from_the_cli(
    dev: Registry, location: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dev.gc("churn", keep_last=1, apply=True, grace_s=0)
    with pytest.raises(VersionDeleted):
        copy_version(dev, "models:/churn/1", Registry.open(location))
    code, out, _ = pmr(capsys, "--registry", dev.store.uri, "copy", "churn/latest", "--to", location)
    assert code == 0 and "as models:/churn/1" in out and "verified" in out
    code, _, err = pmr(capsys, "--registry", dev.store.uri, "copy", "models:/churn/1", "--to", location)
    assert code == 1 and "deleted" in err
