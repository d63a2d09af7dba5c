"""Batch scoring with an audit trail: every prediction names the model version, artifact and run that made it.

``score_frame`` and ``score_file`` are plain functions; the ``score-batch`` flow wires them. Each output row
carries ``pmr_model``, ``pmr_version``, ``pmr_artifact_sha256``, ``pmr_scoring_run`` and ``pmr_scored_at``; each
run leaves a small record under the model in the registry (input fingerprint, output location, row count), so
``pmr predictions NAME`` lists which runs used which version, and ``pmr explain-prediction FILE`` goes from an
output file back to the version's lineage and its restored training data.

Beside ``prediction``, a classifier with ``predict_proba`` writes one probability column per class,
``proba_<label>`` (:func:`proba_column`), in the order of its ``classes_``; a binary one also keeps
``prediction_score``, the positive class's probability.
"""

from __future__ import annotations

import io
import re
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
from prefect_model_registry.flows.tasks import retry_if_transient
from prefect_model_registry.registry import ModelVersion, Registry
from prefect_model_registry.registry.models import utcnow

#: The stamp columns every scored row carries.
STAMPS = ("pmr_model", "pmr_version", "pmr_artifact_sha256", "pmr_scoring_run", "pmr_scored_at")
#: The prefix of a class probability column: ``proba_<label>``.
PROBA_PREFIX = "proba_"
_UNSAFE = re.compile(r"[^0-9A-Za-z_]")


class ScoringInputError(DatasetError):
    """The input's columns do not match the model's input signature (missing and extra columns named)."""


class ScoringColumnClash(ScoringInputError):
    """A class probability column would overwrite an input column, or two classes would share one column."""


def proba_column(label: object) -> str:
    """The output column holding the probability of class ``label``: ``proba_`` and the label as text.

    Every character of ``str(label)`` other than an ASCII letter, digit or ``_`` becomes ``_``, so the name is
    safe in SQL, Parquet and pandas attribute access: ``"Iris setosa"`` -> ``proba_Iris_setosa``, ``1`` ->
    ``proba_1``, ``"é/x"`` -> ``proba___x`` (one ``_`` per character). Case is kept.
    """
    return PROBA_PREFIX + _UNSAFE.sub("_", str(label))


def proba_columns(classes: Any, columns: Any) -> list[str]:
    """The probability column of each class in ``classes`` (in order), checked against the input's ``columns``.

    Raises:
        ScoringColumnClash: a name is already an input column, or two labels sanitise to the same name (named).

    """
    names = [proba_column(label) for label in classes]
    seen: dict[str, object] = {}
    for label, name in zip(classes, names, strict=True):
        if name in seen:
            raise ScoringColumnClash(
                f"classes {seen[name]!r} and {label!r} would both be written to column {name!r} "
                f"(see proba_column for the naming rule); nothing was scored"
            )
        seen[name] = label
    taken = [name for name in names if name in {str(c) for c in columns}]
    if taken:
        raise ScoringColumnClash(
            f"the class probability column(s) {taken} would overwrite the input column(s) of the same name: "
            "rename them in the input; nothing was scored"
        )
    return names


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
    """Predict every row of ``frame`` with the model at ``model_uri`` and stamp each row with who scored it.

    A classifier with ``predict_proba`` adds ``proba_<label>`` per class (and ``prediction_score`` when binary).

    Raises:
        ScoringInputError: the columns do not match the model's signature.
        ScoringColumnClash: a probability column would overwrite an input column or another class's column.

    """
    mv = reg.resolve(model_uri)
    features = check_columns(mv, frame)
    model = reg.load(mv.uri)
    classes = getattr(model, "classes_", None) if hasattr(model, "predict_proba") else None
    # Refused before a row is predicted, so nothing is written for a clash.
    names = proba_columns(list(classes), frame.columns) if classes is not None else []
    out = frame.copy()
    out["prediction"] = model.predict(features)
    if names:
        proba = model.predict_proba(features)
        if len(names) == 2:
            out["prediction_score"] = proba[:, 1]  # kept for binary models: the positive class's probability
        for i, name in enumerate(names):
            out[name] = proba[:, i]
    run = run_id or f"local-{uuid.uuid4().hex[:12]}"
    stamps = (mv.name, mv.version, mv.artifact.sha256, run, utcnow().isoformat())
    for column, value in zip(STAMPS, stamps, strict=True):
        out[column] = value
    return Scored(out, mv, run)


def write_frame(frame: pd.DataFrame, uri: str) -> bytes:
    """Write CSV or Parquet (by suffix) to a local path, ``file://`` or ``s3://``; return the bytes written.

    Raises:
        DatasetError: any other scheme, or an ``s3://`` URI without bucket and key (nothing written).

    """
    where = _output_location(uri)
    buffer = io.BytesIO()
    if uri.lower().endswith((".parquet", ".pq")):
        frame.to_parquet(buffer, index=False)
    else:
        frame.to_csv(buffer, index=False, lineterminator="\n")
    data = buffer.getvalue()
    if not isinstance(where, Path):
        client, bucket, key = where
        client.put_object(Bucket=bucket, Key=key, Body=data)
    else:
        from prefect_model_registry.registry.core.files import write_file

        where.parent.mkdir(parents=True, exist_ok=True)
        write_file(where, data, overwrite=True, what="output_uri")  # a retried run replaces its own output
    return data


def _output_location(uri: str) -> Path | tuple[Any, str, str]:
    """Where ``uri`` points, read the way the flows read their inputs (``gs://…`` is refused, not made a path)."""
    from prefect_model_registry.registry.core.lineage import dataset_location
    from prefect_model_registry.registry.errors import DatasetUnavailable

    try:
        return dataset_location(uri)
    except DatasetUnavailable as exc:
        raise DatasetError(f"output_uri: {exc}".replace("cannot read dataset", "cannot write")) from None


def score_file(
    reg: Registry, model_uri: str, input_uri: str, output_uri: str, run_id: str | None = None, actor: str | None = None
) -> dict[str, Any]:
    """Score a dataset file, write the stamped predictions, and record the scoring run under the model.

    Raises:
        DatasetError: the input cannot be read.
        ScoringInputError: its columns do not match the model's signature, or a class probability column would
            overwrite one of them (:class:`ScoringColumnClash`); nothing is written.

    """
    _output_location(output_uri)  # a bad output location is refused before the input is read or scored
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


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2, retry_condition_fn=retry_if_transient)
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
