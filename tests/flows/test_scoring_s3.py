"""score-batch and explain-prediction on real S3 (SeaweedFS): the scored file is read back from ``s3://``."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pandas as pd
import pytest

from prefect_model_registry.flows.cli import main
from prefect_model_registry.flows.core.approval import ApprovalPolicy
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.pipeline import retrain
from prefect_model_registry.flows.scoring import score_batch
from tests.conftest import BUCKET
from tests.flows.conftest import DATA

pytestmark = pytest.mark.usefixtures("prefect_api")

CHURN = DATA / "churn.csv"


def pmr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the ``pmr`` console script's entry point; its exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def test_explain_prediction_reads_a_scored_file_on_s3(
    s3_server, model_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = uuid.uuid4().hex
    prefix = f"s3://{BUCKET}/{key}"
    registry = f"{prefix}/registry"
    s3_server.client.put_object(Bucket=BUCKET, Key=f"{key}/data/churn.csv", Body=CHURN.read_bytes())
    batch = pd.read_csv(CHURN).drop(columns=["churned"]).head(50)
    s3_server.client.put_object(Bucket=BUCKET, Key=f"{key}/in/batch.csv", Body=batch.to_csv(index=False).encode())
    trained = retrain(
        RetrainConfig(
            model_name=model_name,
            dataset_uri=f"{prefix}/data/churn.csv",
            dataset="churn",
            target="churned",
            registry=registry,
            approval=ApprovalPolicy(required_for=[]),
        ),
        return_state=True,
    )
    assert trained.is_completed(), trained.message
    out = f"{prefix}/out/scored.csv"
    state = score_batch(f"models:/{model_name}@production", f"{prefix}/in/batch.csv", out, registry, return_state=True)
    assert state.is_completed(), state.message
    scored = pd.read_csv(
        io.BytesIO(s3_server.client.get_object(Bucket=BUCKET, Key=f"{key}/out/scored.csv")["Body"].read())
    )

    code, stdout, stderr = pmr(capsys, "--registry", registry, "--json", "explain-prediction", out, "--row", "7")
    assert code == 0, stderr
    facts = json.loads(stdout)
    assert facts["model"] == f"models:/{model_name}/1" and facts["scoring_recorded"]
    assert facts["prediction"] == scored["prediction"][7] and facts["scoring_run"] == scored["pmr_scoring_run"][7]
    assert facts["input"] == f"{prefix}/in/batch.csv" and facts["trained_on"] == f"{prefix}/data/churn.csv"

    # A key that is not there: one line naming it, exit 2, no traceback.
    code, _, stderr = pmr(capsys, "--registry", registry, "explain-prediction", f"{prefix}/out/none.csv")
    assert code == 2 and f"{prefix}/out/none.csv" in stderr and "Traceback" not in stderr


def test_explain_prediction_still_reads_a_local_file_and_refuses_a_foreign_scheme(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, stderr = pmr(capsys, "--registry", str(tmp_path / "r"), "explain-prediction", "gs://b/scored.csv")
    assert code == 2 and "gs://b/scored.csv" in stderr and "Traceback" not in stderr
    plain = tmp_path / "plain.csv"
    plain.write_text("a,prediction\n1,0\n")
    code, _, stderr = pmr(capsys, "--registry", str(tmp_path / "r"), "explain-prediction", str(plain))
    assert code == 2 and "no prediction stamps" in stderr
