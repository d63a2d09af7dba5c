"""Edit, search and compare versions (issue 12): edits are events, manifests stay as registered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.errors import InvalidMetadata
from prefect_model_registry.registry.maintenance.verify import verify
from prefect_model_registry.registry.models import ModelVersion
from tests.conftest import snapshot
from tests.registry.test_cli import pmr


@pytest.fixture
def catalog(reg: Registry) -> Registry:
    for i, (auc, team) in enumerate([(0.81, "a"), (0.93, "b"), (0.88, "b"), (0.95, "a")], start=1):
        info = VersionInfo(metrics={"roc_auc": auc, "accuracy": 0.7 + i / 100}, tags={"team": team}, params={"C": i})
        reg.register_model("churn", LogisticRegression(C=float(i)), info, operation_key=f"v{i}")
    reg.promote("churn", 2, "staging", reason="t")
    return reg


def test_edits_are_events_and_reads_show_the_current_values(catalog: Registry) -> None:
    manifest = catalog.store.get(catalog.manifest_key("churn", 2)).data
    catalog.describe("churn", 2, "the Q3 model", actor="dana", operation_key="d1")
    catalog.tag("churn", 2, {"owner": "dana", "team": "c"}, operation_key="t1")
    catalog.tag("churn", 2, remove=["owner"], operation_key="t2")
    catalog.describe("churn", None, "predicts churn within 90 days", operation_key="d2")
    view = catalog.view("churn", 2)
    assert view.description == "the Q3 model" and view.tags == {"team": "c"}
    assert catalog.get_version("churn", 2).tags == {"team": "b"}  # as registered
    assert catalog.store.get(catalog.manifest_key("churn", 2)).data == manifest
    assert catalog.state("churn").model_description == "predicts churn within 90 days"
    kinds = [e.type for e in catalog.history("churn")][-4:]
    assert kinds == ["described", "tagged", "tagged", "described"]
    assert verify(catalog).ok
    again = catalog.tag("churn", 2, {"owner": "dana", "team": "c"}, operation_key="t1")  # a retry: same event
    assert again.seq == catalog.history("churn")[-3].seq


def test_bad_edits_are_refused_before_anything_is_written(catalog: Registry) -> None:
    before = snapshot(catalog)
    for call in (
        lambda: catalog.tag("churn", 2, {}),
        lambda: catalog.tag("churn", 9, {"a": "b"}),
        lambda: catalog.describe("churn", 2, "bad \ud800"),
        lambda: catalog.tag("churn", 2, {"k": "v\udc00"}),
    ):
        with pytest.raises((InvalidMetadata, LookupError)):
            call()
    assert snapshot(catalog) == before


def test_search_by_stage_tags_and_metrics_sorted(catalog: Registry) -> None:
    found = catalog.search("churn", where=["roc_auc>=0.85"], sort="-roc_auc")
    assert [mv.version for mv in found] == [4, 2, 3]
    assert [mv.version for mv in catalog.search("churn", tags={"team": "b"})] == [3, 2]
    assert [mv.version for mv in catalog.search("churn", stage="staging")] == [2]
    assert [mv.version for mv in catalog.search("churn", sort="roc_auc", limit=2)] == [1, 3]
    catalog.tag("churn", 1, {"team": "b"}, operation_key="retag")  # search sees current tags
    assert [mv.version for mv in catalog.search("churn", tags={"team": "b"})] == [3, 2, 1]
    with pytest.raises(InvalidMetadata, match="METRIC OP NUMBER"):
        catalog.search("churn", where=["roc_auc >> 1"])


def test_cli_edit_search_diff_and_json_after_the_subcommand(tmp_path: Path, capsys) -> None:
    location = str(tmp_path / "reg")
    reg = Registry.open(location)
    for i, auc in enumerate([0.8, 0.9], start=1):
        info = VersionInfo(metrics={"roc_auc": auc}, params={"C": i}, tags={"team": "a"})
        reg.register_model("churn", LogisticRegression(C=float(i)), info, operation_key=f"k{i}")
    r = ("--registry", location)
    assert pmr(capsys, *r, "tag", "churn", "2", "owner=dana", "tier=gold")[0] == 0
    assert pmr(capsys, *r, "untag", "churn", "2", "tier")[0] == 0
    assert pmr(capsys, *r, "describe", "churn", "2", "better recall")[0] == 0
    code, out, _ = pmr(capsys, *r, "versions", "churn", "--where", "roc_auc>0.85", "--tag", "owner=dana", "--json")
    (row,) = json.loads(out)
    assert code == 0 and row["version"] == 2 and row["tags"] == {"team": "a", "owner": "dana"}
    assert row["description"] == "better recall"
    code, out, _ = pmr(capsys, *r, "diff", "churn", "1", "2", "--json")
    body = json.loads(out)
    auc = next(x for x in body["metrics"] if x["field"] == "roc_auc")
    assert code == 0 and auc["delta"] == pytest.approx(0.1) and auc["a"] == 0.8
    assert next(x for x in body["params"] if x["field"] == "C")["differs"]
    assert any(x["field"] == "dataset fingerprint" for x in body["lineage"])
    code, out, _ = pmr(capsys, *r, "diff", "churn", "1", "2")
    assert code == 0 and "roc_auc" in out and "+0.1" in out
    code, _, err = pmr(capsys, *r, "versions", "churn", "--where", "roc_auc~1")
    assert code == 2 and "METRIC OP NUMBER" in err


def test_search_matches_a_brute_force_filter_over_all_manifests(reg: Registry) -> None:
    """Random catalogs and queries: search must agree with filtering every manifest (edits applied) by hand."""
    import operator
    import random

    rng = random.Random(12)
    for i in range(1, 31):
        metrics = {m: round(rng.random(), 2) for m in ("auc", "rmse") if rng.random() < 0.8}
        tags = {k: rng.choice("xyz") for k in ("team", "env") if rng.random() < 0.7}
        reg.register("m", b"v%d" % i, VersionInfo(metrics=metrics, tags=tags), fmt="bytes")
    for version in rng.sample(range(1, 31), 8):  # edits after registration must count, not the manifest's tags
        reg.tag("m", version, {"team": rng.choice("xyz")}, remove=["env"] if rng.random() < 0.5 else [])
    for version in rng.sample(range(1, 31), 5):
        reg.promote("m", version, "staging")
    reg.gc("m", keep_last=28, apply=True, grace_s=0)  # deleted versions never show
    state = reg.state("m")
    everything = [reg.view("m", v, state) for v in range(1, reg.latest_version("m") + 1) if v not in state.deleted]
    ops = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
    for _ in range(150):
        stage = rng.choice([None, "staging", "none"])
        tags = {k: rng.choice("xyz") for k in ("team", "env") if rng.random() < 0.3}
        where = [
            (rng.choice(["auc", "rmse"]), rng.choice(list(ops)), round(rng.random(), 2))
            for _ in range(rng.randint(0, 2))
        ]
        sort = rng.choice([None, "-auc", "rmse", "version", "-version"])
        expected = [
            mv
            for mv in sorted(everything, key=lambda mv: -mv.version)
            if (stage is None or state.stage_of(mv.version) == stage)
            and all(mv.tags.get(k) == v for k, v in tags.items())
            and all(m in mv.metrics and ops[op](mv.metrics[m], x) for m, op, x in where)
        ]
        if sort is not None:
            field, desc = sort.lstrip("-"), sort.startswith("-")

            def value(mv: ModelVersion, field: str = field) -> float | None:
                return mv.version if field == "version" else mv.metrics.get(field)

            has = [mv for mv in expected if value(mv) is not None]
            expected = sorted(has, key=value, reverse=desc) + [mv for mv in expected if value(mv) is None]
        found = reg.search("m", stage=stage, tags=tags, where=[f"{m}{op}{x}" for m, op, x in where], sort=sort)
        assert [mv.version for mv in found] == [mv.version for mv in expected], (stage, tags, where, sort)
        assert all(mv.tags == e.tags for mv, e in zip(found, expected, strict=True))


def test_describe_takes_name_version_text_and_refuses_the_old_shape(tmp_path: Path, capsys) -> None:
    location = str(tmp_path / "reg")
    Registry.open(location).register_model("churn", LogisticRegression(), VersionInfo(), operation_key="k")
    r = ("--registry", location)
    assert pmr(capsys, *r, "describe", "churn", "1", "first cut")[0] == 0
    assert pmr(capsys, *r, "describe", "churn", "--model", "predicts churn")[0] == 0
    # The old shape (TEXT, then --version) gets one line showing the new one, exit 2, and writes nothing.
    before = [e.type for e in Registry.open(location).history("churn")]
    code, _, err = pmr(capsys, *r, "describe", "churn", "better recall", "--version", "1")
    assert code == 2 and err.strip().count("\n") == 0 and "pmr describe NAME VERSION TEXT" in err
    reg = Registry.open(location)
    assert [e.type for e in reg.history("churn")] == before == ["registered", "described", "described"]
    assert reg.view("churn", 1).description == "first cut"
    assert reg.state("churn").model_description == "predicts churn"
