"""Your own data and training code through the whole retraining flow (real GX, scikit-learn, Prefect harness)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from prefect_model_registry.flows.core.approval import ApprovalPolicy
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.pipeline import retrain
from prefect_model_registry.registry import Registry
from prefect_model_registry.validations import profile
from prefect_model_registry.validations.policy import GatePolicy
from tests.flows.conftest import BATCH1, DATA

pytestmark = pytest.mark.usefixtures("prefect_api")

ROOT = Path(__file__).resolve().parents[2]
CHURN = str(DATA / "churn.csv")
NO_APPROVAL = ApprovalPolicy(required_for=[])

TRAINER = '''
"""A team's own training code: a ColumnTransformer pipeline, outside the package."""
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def fit(frame, target, params):
    X, y = frame.drop(columns=[target]), frame[target]
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                            ("encode", OneHotEncoder(handle_unknown="ignore"))])
    features = ColumnTransformer([
        ("numeric", numeric, make_column_selector(dtype_include="number")),
        ("categorical", categorical, make_column_selector(dtype_exclude="number")),
    ])
    model = LogisticRegression(C=params.get("C", 1.0), max_iter=500)
    return Pipeline([("features", features), ("model", model)]).fit(X, y)
'''


HGB_TRAINER = '''
"""Categorical histogram gradient boosting: the model holds a functools.partial, reviewed at registration."""
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder


def fit(frame, target, params):
    X, y = frame.drop(columns=[target]), frame[target]
    text = make_column_selector(dtype_exclude="number")
    encode = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
    columns = ColumnTransformer([("text", encode, text)], remainder="passthrough", verbose_feature_names_out=False)
    model = HistGradientBoostingClassifier(categorical_features=[0, 1, 2], max_iter=50, random_state=0)
    return make_pipeline(columns.set_output(transform="pandas"), model).fit(X, y)
'''


@pytest.fixture
def own_checks(tmp_path: Path) -> tuple[str, str]:
    """A suite and thresholds for the churn table, written outside the package (as `pmr suite init` does)."""
    frame = pd.read_csv(CHURN)
    checks = tmp_path / "checks"
    checks.mkdir()
    suite, limits = checks / "churn.yaml", checks / "churn-thresholds.yaml"
    suite.write_text(profile.suite_yaml(profile.profile_suite(frame, target="churned", name="churn"), CHURN))
    limits.write_text(yaml.safe_dump({"absolute": {"roc_auc": {"min": 0.6}}}))
    return str(suite), str(limits)


@pytest.fixture
def team_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable package of the team's own, and the deployment's allow-list naming it."""
    package = tmp_path / "code" / "team_churn"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(TRAINER)
    (package / "hgb.py").write_text(HGB_TRAINER)
    # Importing this module would leave a mark: the refusal test proves it is never imported.
    mark = f"open({str(tmp_path / 'imported')!r}, 'w').write('ran')\n"
    (package.parent / "not_allowed.py").write_text(mark + "def fit(frame, target, params):\n    raise SystemExit\n")
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.setenv("PMR_TRAINER_MODULES", "team_churn.train,team_churn.hgb")
    return "team_churn.train:fit"


def _serve(reg: Registry, name: str, frame: pd.DataFrame) -> pd.Series:
    """Load production with a fresh registry (only reviewed types) and score rows with gaps and an unseen category."""
    model = Registry.open(reg.store.uri).load(f"models:/{name}@production")
    rows = frame.drop(columns=["churned"]).head(5).copy()
    rows.loc[rows.index[0], "contract_type"] = "lifetime"  # never seen in training
    rows.loc[rows.index[1], "monthly_charges"] = None
    return pd.Series(model.predict(rows))


def test_mixed_churn_table_to_production_with_the_default_preprocessing(tmp_path: Path, model_name: str) -> None:
    registry = str(tmp_path / "registry")
    cfg = RetrainConfig(
        model_name=model_name,
        dataset_uri=CHURN,
        dataset="churn",
        target="churned",
        registry=registry,
        approval=NO_APPROVAL,
    )
    state = retrain(cfg, return_state=True)
    assert state.is_completed(), state.message
    reg = Registry.open(registry)
    assert reg.state(model_name).production == 1
    mv = reg.get_version(model_name, 1)
    assert mv.params["preprocessing"] == "auto" and mv.metrics["roc_auc"] > 0.72
    assert set(mv.reports) >= {"data_quality", "metrics", "thresholds", "champion_challenger"}
    assert len(_serve(reg, model_name, pd.read_csv(CHURN))) == 5


def test_own_trainer_suite_and_thresholds_to_production(
    tmp_path: Path, model_name: str, own_checks: tuple[str, str], team_package: str
) -> None:
    registry = str(tmp_path / "registry")
    suite, limits = own_checks
    cfg = RetrainConfig(
        model_name=model_name,
        dataset_uri=CHURN,
        target="churned",
        suite=suite,
        thresholds=limits,
        trainer=team_package,
        params={"C": 0.5},
        registry=registry,
        approval=NO_APPROVAL,
    )
    state = retrain(cfg, return_state=True)
    assert state.is_completed(), state.message
    reg = Registry.open(registry)
    mv = reg.get_version(model_name, 1)
    assert reg.state(model_name).production == 1
    assert mv.params["trainer"] == team_package and mv.params["C"] == 0.5
    dq = reg.reports(model_name, 1)["data_quality"]
    assert dq["summary"]["suite_file"] == suite  # the user's own file, outside the package
    model = Registry.open(registry).load(f"models:/{model_name}/1")
    assert type(model.named_steps["features"]).__name__ == "ColumnTransformer"
    assert len(_serve(reg, model_name, pd.read_csv(CHURN))) == 5


@pytest.mark.parametrize("trainer", ["not_allowed:fit", "os:system", "team_churn.train"])
def test_a_trainer_outside_the_allow_list_is_refused_before_anything_runs(
    tmp_path: Path, model_name: str, team_package: str, trainer: str
) -> None:
    registry = tmp_path / "registry"
    cfg = RetrainConfig(
        model_name=model_name,
        dataset_uri=CHURN,
        dataset="churn",
        target="churned",
        trainer=trainer,
        registry=str(registry),
        approval=NO_APPROVAL,
    )
    state = retrain(cfg, return_state=True)
    assert state.is_failed() and "config field 'trainer'" in state.message
    assert not (tmp_path / "imported").exists()  # the module was never imported
    assert not registry.exists()  # nothing read, trained or written


def test_a_regressor_to_production_then_a_worse_one_blocked_on_the_same_holdout(
    tmp_path: Path, model_name: str
) -> None:
    from sklearn.datasets import load_diabetes

    data = tmp_path / "diabetes.csv"
    frame = load_diabetes(as_frame=True).frame
    frame.to_csv(data, index=False)
    suite, limits = tmp_path / "diabetes.yaml", tmp_path / "diabetes-thresholds.yaml"
    suite.write_text(profile.suite_yaml(profile.profile_suite(frame, target="target", name="diabetes"), "diabetes"))
    limits.write_text(
        yaml.safe_dump(
            {
                "absolute": {"r2": {"min": 0.3}, "rmse": {"max": 70}, "mae": {"max": 60}},
                "relative": {"rmse": {"max_increase": 2.0}},
            }
        )
    )
    registry = str(tmp_path / "registry")
    base = {
        "model_name": model_name,
        "dataset_uri": str(data),
        "suite": str(suite),
        "thresholds": str(limits),
        "registry": registry,
        "approval": NO_APPROVAL,
    }
    first = retrain(
        RetrainConfig(**base, estimator="sklearn.linear_model.Ridge", params={"alpha": 0.1}), return_state=True
    )
    assert first.is_completed(), first.message
    reg = Registry.open(registry)
    assert reg.state(model_name).production == 1
    assert set(reg.get_version(model_name, 1).metrics) == {"r2", "rmse", "mae"}

    worse = retrain(RetrainConfig(**base, estimator="sklearn.dummy.DummyRegressor"), return_state=True)
    assert worse.is_failed() and "champion_challenger" in worse.message
    comparison = reg.reports(model_name, 2)["champion_challenger"]
    assert comparison["summary"]["primary"] == "rmse"
    assert comparison["summary"]["candidate"]["rmse"] > comparison["summary"]["champion"]["rmse"]
    assert reg.state(model_name).production == 1


@pytest.mark.parametrize("runner", ["local", "dask"])
def test_the_sweep_sends_the_best_of_three_candidates_through_the_gates(
    tmp_path: Path, model_name: str, own_checks: tuple[str, str], runner: str
) -> None:
    suite, limits = own_checks
    registry = str(tmp_path / "registry")
    cfg = RetrainConfig(
        model_name=model_name,
        dataset_uri=CHURN,
        target="churned",
        suite=suite,
        thresholds=limits,
        estimator="sklearn.neighbors.KNeighborsClassifier",
        candidates=[{"n_neighbors": 1}, {"n_neighbors": 60}, {"n_neighbors": 8}],
        task_runner=runner,
        registry=registry,
        target_stage="staging",
        approval=NO_APPROVAL,
    )
    state = retrain(cfg, return_state=True)
    assert state.is_completed(), state.message
    reg = Registry.open(registry)
    mv = reg.get_version(model_name, 1)
    sweep = reg.reports(model_name, 1)["sweep"]
    scores = [c["details"]["metrics"]["roc_auc"] for c in sweep["checks"]]
    assert len(scores) == 3 and len(set(scores)) == 3
    best = max(range(3), key=scores.__getitem__)
    assert sweep["summary"]["best"] == best + 1
    assert mv.params["n_neighbors"] == [1, 60, 8][best]
    assert mv.metrics["roc_auc"] == pytest.approx(scores[best])
    assert reg.state(model_name).stage_of(1) == "staging"


def test_an_undefined_metric_is_a_failed_gate_and_nothing_is_promoted(tmp_path: Path, model_name: str) -> None:
    # 57 benign and 3 malignant rows; a 5% stratified holdout (3 rows) holds only benign: ROC AUC is undefined.
    frame = pd.read_csv(BATCH1)
    frame = pd.concat([frame[frame.target == 1].head(57), frame[frame.target == 0].head(3)])
    data = tmp_path / "skewed.csv"
    frame.to_csv(data, index=False)
    suite = tmp_path / "skewed.yaml"
    suite.write_text(profile.suite_yaml(profile.profile_suite(frame, target="target", name="skewed"), "skewed"))
    registry = str(tmp_path / "registry")
    cfg = RetrainConfig(
        model_name=model_name,
        dataset_uri=str(data),
        suite=str(suite),
        registry=registry,
        split={"test_size": 0.05},
        approval=NO_APPROVAL,
    )
    state = retrain(cfg, return_state=True)
    assert state.is_failed() and "metrics" in state.message and "roc_auc" in state.message
    reg = Registry.open(registry)
    assert reg.state(model_name).production is None and reg.state(model_name).stage_of(1) == "none"
    assert "gate:metrics" in reg.state(model_name).blocked[1]
    assert "roc_auc" not in reg.get_version(model_name, 1).metrics  # never a NaN in a manifest
    assert reg.reports(model_name, 1)["metrics"]["summary"]["undefined"] == ["roc_auc"]


def test_a_wrong_config_field_is_one_line_and_exit_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from prefect_model_registry.flows.cli import app

    cases = {
        "typo": ({"model_name": "m", "dataset_uri": CHURN, "estimater": "x"}, "'estimater': unknown field"),
        "range": ({"model_name": "m", "dataset_uri": CHURN, "split": {"test_size": 2}}, "'split.test_size'"),
        "file": ({"model_name": "m", "dataset_uri": CHURN, "thresholds": str(tmp_path / "nope.yaml")}, "'thresholds'"),
    }
    for name, (body, field) in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(body))
        result = CliRunner().invoke(app, ["ci", "retrain", "--local", "--config", str(path)])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and field in lines[0], result.output
    done = subprocess.run(
        [sys.executable, "-m", "prefect_model_registry.flows.pipeline", "--config", str(tmp_path / "typo.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and "estimater" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_the_config_is_a_readable_form_in_the_ui() -> None:
    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(retrain).model_dump_for_openapi()
    assert list(schema["properties"]) == ["config"]
    fields = schema["definitions"]["RetrainConfig"]["properties"]
    assert {"model_name", "dataset_uri", "suite", "thresholds", "trainer", "candidates", "gates", "approval"} <= set(
        fields
    )
    assert all(f.get("title") for f in fields.values())
    assert all(f.get("description") for n, f in fields.items() if n not in ("split", "gates", "approval"))


def test_config_loads_from_yaml_with_defaults_kept(tmp_path: Path) -> None:
    path = tmp_path / "retrain.yaml"
    path.write_text("model_name: churn\ndataset_uri: data.csv\ntarget: churned\ngates: {advisory: []}\n")
    cfg = RetrainConfig.from_file(path)
    assert (
        cfg.gates == GatePolicy(advisory=[])
        and cfg.split.test_size == 0.25
        and math.isclose(cfg.gates.min_improvement, -0.005)
    )


def test_categorical_boosting_retrained_twice_then_served_in_a_fresh_process_without_trusted_types(
    tmp_path: Path, model_name: str, own_checks: tuple[str, str], team_package: str
) -> None:
    suite, limits = own_checks
    registry = str(tmp_path / "registry")
    cfg = RetrainConfig(
        model_name=model_name,
        dataset_uri=CHURN,
        target="churned",
        suite=suite,
        thresholds=limits,
        trainer="team_churn.hgb:fit",
        registry=registry,
        approval=NO_APPROVAL,
    )
    for version in (1, 2):  # the second run loads v1 as its champion: the reviewed types, no list by hand
        state = retrain(cfg, return_state=True)
        assert state.is_completed(), state.message
        assert Registry.open(registry).state(model_name).production == version
    assert "functools.partial" in Registry.open(registry).get_version(model_name, 2).artifact.trusted_types
    serve = (
        "import pandas as pd; from prefect_model_registry.registry import Registry; "
        f"m = Registry.open({registry!r}).load('models:/{model_name}@production'); "
        f"print(m.predict(pd.read_csv({CHURN!r}).drop(columns=['churned']).head(4)).tolist())"
    )
    done = subprocess.run([sys.executable, "-c", serve], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("["), done.stderr[-2000:]


def test_the_flow_keeps_the_training_data_restorable_after_the_file_is_overwritten(
    tmp_path: Path, model_name: str
) -> None:
    latest = tmp_path / "latest.csv"
    original = Path(CHURN).read_bytes()
    latest.write_bytes(original)
    registry = str(tmp_path / "registry")
    cfg = RetrainConfig(
        model_name=model_name,
        dataset_uri=str(latest),
        dataset="churn",
        target="churned",
        registry=registry,
        approval=NO_APPROVAL,
    )
    assert retrain(cfg, return_state=True).is_completed()
    latest.write_bytes(b"overwritten by the next nightly export\n")
    assert Registry.open(registry).load_dataset(f"models:/{model_name}/1") == original
