"""Sweep ties (issue 32, finding 6): candidates equal on the primary metric are decided by the secondary one."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from typer.testing import CliRunner

from prefect_model_registry.flows.cli import app
from prefect_model_registry.flows.core.approval import ApprovalPolicy
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.errors import ConfigError
from prefect_model_registry.flows.pipeline import retrain
from prefect_model_registry.registry import Registry
from prefect_model_registry.validations import profile

pytestmark = pytest.mark.usefixtures("prefect_api")

NO_APPROVAL = ApprovalPolicy(required_for=[])
#: Every C separates the classes perfectly (roc_auc 1.0 for all); a larger C is more confident (lower log loss).
CANDIDATES = [{"C": 0.01}, {"C": 100.0}, {"C": 1.0}]


@pytest.fixture
def separable(tmp_path: Path) -> dict[str, str]:
    """A trivially separable table with its own suite and thresholds, as a team would have them."""
    rng = np.random.default_rng(7)
    y = np.repeat([0, 1], 100)
    frame = pd.DataFrame(
        {"x1": np.where(y == 1, 1.0, -1.0) * rng.uniform(3, 4, 200), "x2": rng.normal(size=200), "target": y}
    )
    data, suite, limits = tmp_path / "separable.csv", tmp_path / "separable.yaml", tmp_path / "limits.yaml"
    frame.to_csv(data, index=False)
    suite.write_text(profile.suite_yaml(profile.profile_suite(frame, target="target", name="separable"), str(data)))
    limits.write_text(yaml.safe_dump({"absolute": {"roc_auc": {"min": 0.6}}}))
    return {"dataset_uri": str(data), "suite": str(suite), "thresholds": str(limits)}


def _config(tmp_path: Path, model_name: str, separable: dict[str, str], **extra: object) -> RetrainConfig:
    return RetrainConfig.parse(
        {
            "model_name": model_name,
            **separable,
            "candidates": CANDIDATES,
            "registry": str(tmp_path / "registry"),
            "target_stage": "staging",
            "approval": NO_APPROVAL.model_dump(),
            **extra,
        }
    )


def test_a_tie_on_roc_auc_is_decided_by_log_loss(tmp_path: Path, model_name: str, separable: dict[str, str]) -> None:
    state = retrain(_config(tmp_path, model_name, separable), return_state=True)
    assert state.is_completed(), state.message
    reg = Registry.open(str(tmp_path / "registry"))
    sweep = reg.reports(model_name, 1)["sweep"]
    metrics = [c["details"]["metrics"] for c in sweep["checks"]]
    assert [m["roc_auc"] for m in metrics] == [1.0, 1.0, 1.0]  # the tie is real
    losses = [m["log_loss"] for m in metrics]
    assert losses.index(min(losses)) == 1 and len(set(losses)) == 3  # the best log loss is not the first
    assert reg.get_version(model_name, 1).params["C"] == 100.0  # the old code kept candidate 1 (C=0.01)
    summary = sweep["summary"]
    assert summary["best"] == 2 and summary["tied"] == [1, 2, 3] and summary["decided_by"] == "log_loss"

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    cards = [str(a.data) for a in artifacts if a.key == f"{model_name}-model-card"]  # at registration and staging
    how = "**Chosen:** candidate 2 of 3: tied on roc_auc within 1e-9 (candidates 1, 2, 3); decided by log_loss"
    assert cards and all(how + " (lower is better)" in card for card in cards)


def test_without_a_secondary_metric_candidate_order_decides_and_says_so(
    tmp_path: Path, model_name: str, separable: dict[str, str]
) -> None:
    state = retrain(_config(tmp_path, model_name, separable, secondary_metric="none"), return_state=True)
    assert state.is_completed(), state.message
    reg = Registry.open(str(tmp_path / "registry"))
    summary = reg.reports(model_name, 1)["sweep"]["summary"]
    assert reg.get_version(model_name, 1).params["C"] == 0.01
    assert summary["decided_by"] == "candidate order" and "no secondary metric" in summary["how"]


def test_a_secondary_metric_the_candidates_lack_stops_the_run_before_anything_is_registered(
    tmp_path: Path, model_name: str, separable: dict[str, str]
) -> None:
    state = retrain(_config(tmp_path, model_name, separable, secondary_metric="rmse"), return_state=True)
    assert state.is_failed() and "secondary_metric" in str(state.message) and "rmse" in str(state.message)
    assert not (tmp_path / "registry" / "models" / model_name).exists()


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("tie_tolerance", -1e-9, "greater than or equal to 0"),
        ("tie_tolerance", math.inf, "finite"),
        ("tie_tolerance", "a lot", "number"),
        ("secondary_metric", "logloss", "unknown metric"),
        ("secondary_metric", "", "unknown metric"),
    ],
)
def test_bad_tie_settings_are_refused_with_the_field_named(field: str, value: object, why: str) -> None:
    with pytest.raises(ConfigError, match=field) as info:
        RetrainConfig.parse({"model_name": "m", "dataset_uri": "d.csv", field: value})
    assert why in str(info.value)


def test_a_secondary_metric_equal_to_the_primary_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"secondary_metric.*primary"):
        RetrainConfig.parse(
            {"model_name": "m", "dataset_uri": "d.csv", "gates": {"primary_metric": "f1"}, "secondary_metric": "f1"}
        )


def test_pmr_ci_refuses_a_bad_tie_tolerance_before_anything_is_written(
    tmp_path: Path, model_name: str, separable: dict[str, str]
) -> None:
    config = tmp_path / "retrain.yaml"
    config.write_text(yaml.safe_dump({"model_name": model_name, **separable, "candidates": CANDIDATES}))
    registry = tmp_path / "registry"
    result = CliRunner().invoke(
        app,
        ["--registry", str(registry), "ci", "retrain", "--local", "-c", str(config), "-p", "tie_tolerance=-0.5"],
    )
    assert result.exit_code == 2 and "'tie_tolerance': Input should be greater than or equal to 0" in result.output
    assert not registry.exists()


@pytest.mark.parametrize(
    ("primary", "metrics", "best", "decided_by", "how"),
    [
        # Within the tolerance of the best it is a tie; just outside it is not.
        ("roc_auc", [(0.95, 0.3), (0.95 - 5e-10, 0.2), (0.8, 0.1)], 1, "log_loss", "(candidates 1, 2); decided by"),
        ("roc_auc", [(0.95, 0.3), (0.95 - 2e-9, 0.2), (0.8, 0.1)], 0, "roc_auc", "best roc_auc (0.95)"),
        # An undefined secondary never wins; a tie on both is decided by order.
        ("roc_auc", [(1.0, math.nan), (1.0, 0.5)], 1, "log_loss", "decided by log_loss (lower is better)"),
        ("roc_auc", [(1.0, 0.5), (1.0, 0.5)], 0, "candidate order", "tied on log_loss too"),
        # A lower-is-better primary: rmse.
        ("rmse", [(2.0, 0.7), (1.0, 0.9), (1.0, 0.8)], 2, "log_loss", "tied on rmse within 1e-9 (candidates 2, 3)"),
    ],
)
def test_choose_follows_each_metric_direction_and_the_tolerance(
    primary: str, metrics: list[tuple[float, float]], best: int, decided_by: str, how: str
) -> None:
    from prefect_model_registry.validations.sweep import choose

    scored = [({"i": i}, {primary: p, "log_loss": s}) for i, (p, s) in enumerate(metrics)]
    chosen, report = choose(scored, primary, "log_loss", 1e-9)
    assert chosen == best and report.summary["decided_by"] == decided_by and how in report.summary["how"]
    assert report.checks[best].details["best"] and report.summary["best"] == best + 1
