"""Batch scoring with an audit trail: every prediction names the model version, artifact and run that made it.

``score_frame`` and ``score_file`` are plain functions; the ``score-batch`` flow wires them. Each output row
carries ``pmr_model``, ``pmr_version``, ``pmr_artifact_sha256``, ``pmr_scoring_run`` and ``pmr_scored_at``; each
run leaves a small record under the model in the registry (input fingerprint, output location, row count), so
``pmr predictions NAME`` lists which runs used which version, and ``pmr explain-prediction FILE`` goes from an
output file back to the version's lineage and its restored training data.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from prefect_model_registry.flows.core import trust
from prefect_model_registry.flows.core.training import read_dataset
from prefect_model_registry.flows.errors import DatasetError
from prefect_model_registry.registry import ModelVersion, Registry
from prefect_model_registry.registry.models import utcnow

#: The stamp columns every scored row carries.
STAMPS = ("pmr_model", "pmr_version", "pmr_artifact_sha256", "pmr_scoring_run", "pmr_scored_at")


class ScoringInputError(DatasetError):
    """The input's columns do not match the model's input signature (missing and extra columns named)."""


@dataclass(frozen=True)
class Scored:
    """A scored frame and the version that scored it."""

    frame: pd.DataFrame
    version: ModelVersion
    run_id: str


def check_columns(mv: ModelVersion, frame: pd.DataFrame) -> pd.DataFrame:
    """The input's columns in the model's training order.

    Raises:
        ScoringInputError: columns missing from the input or not seen in training (both named).

    """
    if not mv.signature:
        return frame
    wanted = [column["name"] for column in mv.signature]
    missing = [c for c in wanted if c not in frame.columns]
    extra = [str(c) for c in frame.columns if c not in wanted and not str(c).startswith("pmr_")]
    if missing or extra:
        raise ScoringInputError(
            f"the input does not match what {mv.uri} was trained on: missing columns {missing}, extra columns {extra}"
        )
    return frame[wanted]


def score_frame(reg: Registry, model_uri: str, frame: pd.DataFrame, run_id: str | None = None) -> Scored:
    """Predict every row of ``frame`` with the model at ``model_uri`` and stamp each row with who scored it."""
    mv = reg.resolve(model_uri)
    features = check_columns(mv, frame)
    model = reg.load(mv.uri)
    out = frame.copy()
    out["prediction"] = model.predict(features)
    if hasattr(model, "predict_proba") and len(getattr(model, "classes_", [])) == 2:
        out["prediction_score"] = model.predict_proba(features)[:, 1]
    run = run_id or f"local-{uuid.uuid4().hex[:12]}"
    stamps = (mv.name, mv.version, mv.artifact.sha256, run, utcnow().isoformat())
    for column, value in zip(STAMPS, stamps, strict=True):
        out[column] = value
    return Scored(out, mv, run)


def write_frame(frame: pd.DataFrame, uri: str) -> bytes:
    """Write CSV or Parquet (by suffix) to a local path or ``s3://``; return the bytes written."""
    buffer = io.BytesIO()
    if uri.lower().endswith((".parquet", ".pq")):
        frame.to_parquet(buffer, index=False)
    else:
        frame.to_csv(buffer, index=False, lineterminator="\n")
    data = buffer.getvalue()
    if uri.startswith("s3://"):
        import os

        import boto3

        bucket, _, key = uri[len("s3://") :].partition("/")
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        boto3.session.Session().client("s3", endpoint_url=endpoint).put_object(Bucket=bucket, Key=key, Body=data)
    else:
        from prefect_model_registry.registry.core.files import write_file

        path = Path(uri.removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, data, overwrite=True, what="output_uri")  # a retried run replaces its own output
    return data


def score_file(
    reg: Registry, model_uri: str, input_uri: str, output_uri: str, run_id: str | None = None, actor: str | None = None
) -> dict[str, Any]:
    """Score a dataset file, write the stamped predictions, and record the scoring run under the model.

    Raises:
        DatasetError: the input cannot be read.
        ScoringInputError: its columns do not match the model's signature.

    """
    data = read_dataset(input_uri)
    scored = score_frame(reg, model_uri, data.frame, run_id)
    write_frame(scored.frame, output_uri)
    record = {
        "run": scored.run_id,
        "model_uri": model_uri,
        "input_uri": input_uri,
        "input_fingerprint": data.fingerprint,
        "output_uri": output_uri,
        "rows": len(scored.frame.index),
    }
    reg.record_scoring(scored.version.name, scored.version.version, record, actor=actor)
    return record | {"version": scored.version.version, "artifact_sha256": scored.version.artifact.sha256}


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def _score(registry: str | None, model_uri: str, input_uri: str, output_uri: str, run_id: str) -> dict[str, Any]:
    return score_file(Registry.open(registry), model_uri, input_uri, output_uri, run_id, actor="prefect:score-batch")


@flow(name="score-batch", log_prints=True)
def score_batch(model_uri: str, input_uri: str, output_uri: str, registry: str | None = None) -> dict[str, Any]:
    """Score ``input_uri`` with ``model_uri`` (e.g. ``models:/churn@production``) into ``output_uri``.

    Args:
        model_uri: the model to score with.
        input_uri: CSV or Parquet to score (local or s3://).
        output_uri: where the stamped predictions go (CSV or Parquet by suffix).
        registry: registry location (default PMR_REGISTRY_URI).
    """
    # A deployment's run reads and writes only where the worker allows (flows/core/trust.py).
    trust.guard(input_uri=input_uri, output_uri=output_uri, registry=registry)
    record = _score(registry, model_uri, input_uri, output_uri, str(flow_run.id or f"local-{uuid.uuid4().hex[:12]}"))
    get_run_logger().info(
        "scored %d rows of %s with %s v%s into %s",
        record["rows"],
        input_uri,
        model_uri,
        record["version"],
        output_uri,
    )
    return record


def main(argv: list[str] | None = None) -> int:
    """Run score-batch in this process.

    ``python -m prefect_model_registry.flows.scoring MODEL_URI INPUT OUTPUT [--registry R]``.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m prefect_model_registry.flows.scoring", description=main.__doc__)
    parser.add_argument("model_uri")
    parser.add_argument("input_uri")
    parser.add_argument("output_uri")
    parser.add_argument("--registry", default=None)
    args = parser.parse_args(argv)
    state = score_batch(args.model_uri, args.input_uri, args.output_uri, args.registry, return_state=True)
    if not state.is_completed():
        print(f"error: {state.message}", file=sys.stderr)
        return 1
    print(state.result())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
