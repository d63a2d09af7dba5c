"""The pipeline against the real S3 server: dataset read from the bucket, registry in the bucket."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from prefect_model_registry.flows.core.approval import ApprovalPolicy
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.pipeline import retrain
from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.maintenance.verify import verify
from tests.conftest import BUCKET
from tests.flows.conftest import BATCH1, BATCH2, Background, wait_for_paused

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_pipeline_on_s3(s3_server, model_name: str) -> None:
    prefix = uuid.uuid4().hex
    for path in (BATCH1, BATCH2):
        s3_server.client.put_object(Bucket=BUCKET, Key=f"{prefix}/data/{Path(path).name}", Body=Path(path).read_bytes())
    location = f"s3://{BUCKET}/{prefix}/registry"
    data = f"s3://{BUCKET}/{prefix}/data"
    first = retrain(
        RetrainConfig(
            model_name=model_name,
            dataset_uri=f"{data}/breast_cancer_batch1.csv",
            registry=location,
            approval=ApprovalPolicy(required_for=[]),
        ),
        return_state=True,
    )
    assert first.is_completed(), first.message
    run = Background(
        retrain,
        config=RetrainConfig(
            model_name=model_name,
            dataset_uri=f"{data}/breast_cancer_batch2.csv",
            registry=location,
            approval=ApprovalPolicy(poll_interval_seconds=1, timeout_seconds=120),
        ),
    )
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(wait_for_paused(model_name).id, run_input={"approve": True, "reviewer": "hana"})
    assert run.join().is_completed()

    reg = Registry.open(location)
    assert reg.state(model_name).production == 2
    mv = reg.get_version(model_name, 2)
    assert mv.lineage.dataset_uri == f"{data}/breast_cancer_batch2.csv" and mv.lineage.parent_version == 1
    keys = [o["Key"] for o in s3_server.client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/registry/")["Contents"]]
    assert f"{prefix}/registry/models/{model_name}/versions/0000000002.json" in keys
    assert verify(reg).ok
