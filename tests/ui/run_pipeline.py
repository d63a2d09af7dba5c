"""Run the retraining pipeline in its own process, against the Prefect server named by ``PREFECT_API_URL``.

``python -m tests.ui.run_pipeline MODEL REGISTRY``: v1 on batch 1 straight to production (no approval), then v2
on batch 2, which pauses until a reviewer decides in the UI. Exits 0 when v2's run completed, 1 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

from prefect_model_registry.flows.core.approval import ApprovalPolicy
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.pipeline import retrain

DATA = Path(__file__).resolve().parents[2] / "flows" / "data"
BATCH1 = str(DATA / "breast_cancer_batch1.csv")
BATCH2 = str(DATA / "breast_cancer_batch2.csv")


def main(model_name: str, registry: str) -> int:
    first = retrain(
        RetrainConfig(
            model_name=model_name,
            dataset_uri=BATCH1,
            registry=registry,
            actor="ci-bot",
            approval=ApprovalPolicy(required_for=[]),
        ),
        return_state=True,
    )
    if not first.is_completed():
        print(f"v1 did not complete: {first.message}", flush=True)
        return 2
    second = retrain(
        RetrainConfig(
            model_name=model_name,
            dataset_uri=BATCH2,
            registry=registry,
            actor="ci-bot",
            approval=ApprovalPolicy(poll_interval_seconds=1, timeout_seconds=300),
        ),
        return_state=True,
    )
    print(f"v2 final state: {second.type.value}: {second.message}", flush=True)
    return 0 if second.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
