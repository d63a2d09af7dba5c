"""``pmr explain-prediction``: from a scored file back to the version, its lineage and its training data."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from prefect_model_registry.registry.cli.context import app, emit, open_registry
from prefect_model_registry.registry.errors import IntegrityError, InvalidMetadata


@app.command("explain-prediction")
def explain_prediction(
    file: Annotated[
        str, typer.Argument(help="A file written by score-batch (CSV or Parquet): a path, file:// or s3://.")
    ],
    row: Annotated[int, typer.Option("--row", help="Which row (0-based).", min=0)] = 0,
) -> None:
    """Which model made this prediction: the version, its artifact (checked), the scoring run, the training data.

    FILE is read as score-batch wrote it and as the flows read their inputs: a local path, ``file://`` or
    ``s3://bucket/key`` (the ``AWS_*`` environment names the endpoint and credentials).
    """
    from prefect_model_registry.flows.core.training import read_dataset
    from prefect_model_registry.flows.scoring import PROBA_PREFIX, STAMPS

    # The flows' own reader: one way to read a user's file, local or s3:// (a URI is never made a Path).
    frame = read_dataset(file).frame
    missing = [c for c in STAMPS if c not in frame.columns]
    if missing:
        raise InvalidMetadata(f"{file} has no prediction stamps ({', '.join(missing)} missing): not from score-batch")
    if row >= len(frame.index):
        raise InvalidMetadata(f"{file} has {len(frame.index)} rows; there is no row {row}")
    stamp = frame.iloc[row]
    reg = open_registry()
    mv = reg.get_version(str(stamp["pmr_model"]), int(stamp["pmr_version"]))
    if mv.artifact.sha256 != stamp["pmr_artifact_sha256"]:
        raise IntegrityError(f"{mv.uri}'s artifact is not the one that scored this row (sha256 differs)")
    runs = [e for e in reg.scoring_runs(mv.name, mv.version) if e.run_id == stamp["pmr_scoring_run"]]
    lin = mv.lineage
    data = {
        "prediction": _native(stamp.get("prediction")),
        "model": mv.uri,
        "artifact_sha256": mv.artifact.sha256,
        "scoring_run": stamp["pmr_scoring_run"],
        "scored_at": stamp["pmr_scored_at"],
        "scoring_recorded": bool(runs),
        "input": runs[0].data.get("input_uri") if runs else None,
        "trained_on": lin.dataset_uri,
        "dataset_fingerprint": lin.dataset_fingerprint,
        "training_data_restorable": bool(lin.dataset_snapshot),
        "code_version": lin.code_version,
        "flow_run": lin.flow_run_id,
        "parent_version": lin.parent_version,
    }
    # The class probabilities score-batch wrote after the prediction (flows/scoring.py, PROBA_PREFIX), if any; an
    # input column of that name (a feature the model was trained on) comes before it.
    after = list(frame.columns)[list(frame.columns).index("prediction") + 1 :] if "prediction" in frame.columns else []
    probabilities = {str(c): _native(stamp[c]) for c in after if str(c).startswith(PROBA_PREFIX)}
    if probabilities:
        data["probabilities"] = probabilities
    lines = [
        f"row {row}: prediction {data['prediction']} made by {mv.uri} (artifact sha256 {mv.artifact.sha256[:12]}, "
        "matches the manifest)",
        *(
            [
                "probabilities "
                + ", ".join(f"{c.removeprefix(PROBA_PREFIX)}={_short(v)}" for c, v in probabilities.items())
            ]
            if probabilities
            else []
        ),
        f"scoring run {data['scoring_run']} at {data['scored_at']}"
        + (f", input {data['input']}" if runs else " (not recorded in the registry)"),
        f"trained on {lin.dataset_uri} ({lin.dataset_fingerprint}), code {lin.code_version}, flow run "
        f"{lin.flow_run_id}",
        f"training data: pmr dataset {mv.name} {mv.version} -o FILE"
        if lin.dataset_snapshot
        else f"training data not kept: {lin.dataset_snapshot_note}",
    ]
    emit(data, lines)


def _native(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (JSON shows ``1``, not ``"1"``); anything else unchanged."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _short(value: Any) -> str:
    """A probability in four significant digits; anything else as it is."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
