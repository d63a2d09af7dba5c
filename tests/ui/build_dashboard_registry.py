"""Build the dashboard tests' registry with the real retraining flow, in its own process.

``python -m tests.ui.build_dashboard_registry MODEL REGISTRY WORKDIR`` against the Prefect server named by
``PREFECT_API_URL``, under the pipeline's default approval policy (production needs a reviewer, a model's first
version excepted): v1 (batch 1) straight to production; v2 (batch 2) pauses for a reviewer (the test approves it
with ``pmr approve``); v3 (batch 2) pauses too (the test rejects it with ``pmr reject``); v4, a dummy classifier,
fails the thresholds gate (registered, blocked); a corrupted batch fails the data-quality gate (nothing
registered). Prints one ``step ...`` line per run; exits 0 when every run ended as expected.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from prefect_model_registry.flows.core.approval import ApprovalPolicy
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.pipeline import retrain

DATA = Path(__file__).resolve().parents[2] / "flows" / "data"
BATCH1 = str(DATA / "breast_cancer_batch1.csv")
BATCH2 = str(DATA / "breast_cancer_batch2.csv")
NO_APPROVAL = ApprovalPolicy(required_for=[])
REVIEWED = ApprovalPolicy(poll_interval_seconds=1, timeout_seconds=120)


def main(model_name: str, registry: str, workdir: str) -> int:
    def run(step: str, want_completed: bool, **kwargs: object) -> bool:
        config = RetrainConfig(model_name=model_name, registry=registry, actor="ci-bot", **kwargs)  # type: ignore[arg-type]
        state = retrain(config, return_state=True)
        print(f"step {step}: {state.type.value}: {state.message}", flush=True)
        return state.is_completed() == want_completed

    corrupted = pd.read_csv(BATCH2)
    corrupted.loc[:40, "mean radius"] = None
    corrupted.loc[50:60, "target"] = 3
    bad = Path(workdir) / "corrupted.csv"
    corrupted.to_csv(bad, index=False)
    steps = [
        run("v1", True, dataset_uri=BATCH1, approval=REVIEWED),
        run("v2", True, dataset_uri=BATCH2, approval=REVIEWED),  # `pmr approve` resumes it
        run("v3", False, dataset_uri=BATCH2, approval=REVIEWED),  # `pmr reject` ends it (a failed run)
        run(
            "v4",
            False,
            dataset_uri=BATCH2,
            approval=NO_APPROVAL,
            estimator="sklearn.dummy.DummyClassifier",
            preprocessing="none",
        ),
        run("corrupted", False, dataset_uri=str(bad), approval=NO_APPROVAL),
    ]
    return 0 if all(steps) else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
