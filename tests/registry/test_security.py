"""Loading never runs code it should not; approval cannot be skipped; break-glass is logged (issue 14)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from prefect_model_registry.registry import ApprovalRules, Registry
from prefect_model_registry.registry.cli import main
from prefect_model_registry.registry.core.artifacts import deserialize, reviewable
from prefect_model_registry.registry.errors import (
    ApprovalRefused,
    ApprovalRequired,
    InvalidMetadata,
    PromotionBlocked,
    UntrustedArtifact,
)
from tests.conftest import snapshot
from tests.registry.evil import Tripwire


def _mixed_frame(n: int = 200) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, n).astype(float),
            "charges": rng.normal(70, 20, n),
            "contract": rng.choice(["monthly", "yearly", "two-year"], n),
        }
    )
    df.loc[::7, "charges"] = np.nan
    df.loc[::11, "contract"] = None
    y = ((df["tenure"] < 20) & (df["contract"] == "monthly")).astype(int).to_numpy()
    return df, y


def _column_pipeline() -> Pipeline:
    df, y = _mixed_frame()
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["tenure", "charges"]),
            (
                "cat",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                ["contract"],
            ),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(df, y)


@pytest.mark.parametrize("func", [eval, exec, __import__, np.load])
def test_code_running_callables_are_refused_at_registration(reg: Registry, func: object) -> None:
    data = sio.dumps(FunctionTransformer(func=func))
    before = snapshot(reg)
    with pytest.raises(UntrustedArtifact, match=getattr(func, "__name__", "")):
        reg.register("m", data, fmt="skops")
    assert snapshot(reg) == before


@pytest.mark.parametrize("func", [eval, exec, __import__])
def test_code_running_callables_are_refused_on_load_whatever_the_manifest_says(func: object) -> None:
    data = sio.dumps(FunctionTransformer(func=func))
    name = f"builtins.{func.__name__}"  # type: ignore[attr-defined]
    assert not reviewable(name)
    for reviewed in (None, [name], []):  # a legacy manifest, a tampered list, an empty one
        with pytest.raises(UntrustedArtifact, match=name):
            deserialize(data, "skops", reviewed=reviewed)
    with pytest.raises(UntrustedArtifact, match="never trusted"):
        deserialize(data, "skops", reviewed=[], trusted=[name])


def test_a_refused_artifact_runs_none_of_its_code(reg: Registry, tmp_path: Path, monkeypatch) -> None:
    wire = tmp_path / "tripwire"
    monkeypatch.setenv("PMR_TRIPWIRE", str(wire))
    data = sio.dumps(Tripwire())
    assert sio.loads(data, trusted=sio.get_untrusted_types(data=data)).armed and wire.exists()  # the wire works
    wire.unlink()
    with pytest.raises(UntrustedArtifact, match=r"tests\.registry\.evil\.Tripwire"):
        reg.register("m", data, fmt="skops")
    with pytest.raises(UntrustedArtifact, match="Tripwire"):
        deserialize(data, "skops", reviewed=["tests.registry.evil.Tripwire"])
    # Registered as opaque bytes it is stored, but loading never turns it into objects.
    mv = reg.register("m", data, fmt="bytes")
    assert reg.load(mv.uri) == data
    assert not wire.exists()


def test_pipeline_with_column_transformer_and_categorical_hgb_load(reg: Registry) -> None:
    df, y = _mixed_frame()
    pipe = _column_pipeline()
    mv = reg.register("churn", sio.dumps(pipe), fmt="skops")
    assert mv.artifact.trusted_types is not None
    loaded = reg.load(mv.uri)
    assert (loaded.predict(df) == pipe.predict(df)).all()

    cat = df.assign(contract=df["contract"].astype("category"))
    hgb = HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=20).fit(cat, y)
    mv2 = reg.register("churn", sio.dumps(hgb), fmt="skops")
    assert "functools.partial" in (mv2.artifact.trusted_types or [])
    assert (reg.load(mv2.uri).predict(cat) == hgb.predict(cat)).all()
    assert (Registry.open(reg.store.uri).load("churn/2").predict(cat) == hgb.predict(cat)).all()


def test_pickle_loads_only_with_the_opt_in(reg: Registry) -> None:
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    mv = reg.register("p", pickle.dumps(model), fmt="pickle")
    with pytest.raises(UntrustedArtifact, match="allow_pickle"):
        reg.load(mv.uri)
    assert reg.load(mv.uri, allow_pickle=True).predict([[1.0]])[0] == 1


def _staged(reg: Registry, n: int) -> None:
    for v in range(1, n + 1):
        reg.register("m", b"model %d" % v, fmt="bytes")
        reg.promote("m", v, "staging", reason="gates passed")


def test_policy_is_enforced_for_every_caller(reg: Registry) -> None:
    _staged(reg, 3)
    reg.set_policy("m", ApprovalRules(reviewers=["alice"], four_eyes=True), actor="admin", reason="SOX")
    reg.promote("m", 1, "production", reason="first version is exempt")
    before = snapshot(reg)
    with pytest.raises(ApprovalRequired, match="needs a recorded approval"):
        reg.promote("m", 2, "production", reason="no approval")
    with pytest.raises(ApprovalRefused, match="not an allowed reviewer"):
        reg.record_decision("m", 2, approved=True, reviewer="mallory")
    assert snapshot(reg) == before
    reg.record_decision("m", 2, approved=True, reviewer="alice", comment="looks good")
    assert reg.promote("m", 2, "production", reason="approved").data["archived"] == [1]
    # Rollback to a version that was in production stays allowed.
    assert reg.rollback("m", reason="bad predictions").data["to"] == 1
    # An administrator's policy is not loosened by a pipeline recording its default.
    assert reg.set_policy("m", ApprovalRules(stages=[]), only_if_unset=True) is None
    assert reg.policy("m") == ApprovalRules(reviewers=["alice"], four_eyes=True)


def test_break_glass_needs_a_reason_and_is_its_own_event(reg: Registry) -> None:
    _staged(reg, 2)
    reg.set_policy("m", ApprovalRules(first_version_exempt=False), reason="strict")
    with pytest.raises(ApprovalRequired):
        reg.promote("m", 1, "production", reason="x")
    with pytest.raises(InvalidMetadata, match="reason"):
        reg.promote("m", 1, "production", reason=" ", break_glass=True)
    event = reg.promote("m", 1, "production", reason="incident 42", break_glass=True, actor="oncall")
    assert (event.type, event.actor, event.reason) == ("break_glass", "oncall", "incident 42")
    assert reg.state("m").production == 1
    assert "BREAK-GLASS" in str(reg.history("m")[-1])
    # Break-glass skips the approval, never a rejection.
    reg.record_decision("m", 2, approved=False, reviewer="alice", comment="leaks PII")
    with pytest.raises(PromotionBlocked, match="rejected"):
        reg.promote("m", 2, "production", reason="force", break_glass=True)


def pmr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def test_pmr_promote_needs_an_approval_and_break_glass_is_logged(location: str, capsys) -> None:
    reg = Registry.open(location)
    _staged(reg, 3)
    r = ["--registry", location]
    assert pmr(capsys, *r, "policy", "set", "m", "--reason", "prod needs review", "--four-eyes")[0] == 0
    assert pmr(capsys, *r, "promote", "m", "1", "--to", "production", "--reason", "first")[0] == 0
    code, _, err = pmr(capsys, *r, "promote", "m", "2", "--to", "production", "--reason", "unreviewed")
    assert code == 1 and "needs a recorded approval" in err and "Traceback" not in err
    assert reg.state("m").production == 1
    assert pmr(capsys, *r, "--actor", "alice", "approve", "m", "2", "--comment", "ok")[0] == 0
    code, out, _ = pmr(capsys, *r, "promote", "m", "2", "--to", "production", "--reason", "reviewed")
    assert code == 0 and "archived v1" in out
    code, _, err = pmr(capsys, *r, "promote", "m", "3", "--to", "production", "--reason", "", "--break-glass")
    assert code == 2 and "reason" in err
    code, out, _ = pmr(
        capsys,
        *r,
        "--actor",
        "oncall",
        "promote",
        "m",
        "3",
        "--to",
        "production",
        "--reason",
        "incident 42",
        "--break-glass",
    )
    assert code == 0 and "BREAK-GLASS" in out
    last = reg.history("m")[-1]
    assert (last.type, last.actor, last.reason, last.version) == ("break_glass", "oncall", "incident 42", 3)
    code, out, _ = pmr(capsys, *r, "--json", "policy", "show", "m")
    assert code == 0 and '"four_eyes": true' in out
