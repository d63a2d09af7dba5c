"""``pmr explain-prediction``: from a scored file back to the version, its lineage and its training data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefect_model_registry.registry.cli.context import app, emit, open_registry
from prefect_model_registry.registry.errors import IntegrityError, InvalidMetadata


@app.command("explain-prediction")
def explain_prediction(
    file: Annotated[Path, typer.Argument(help="A file written by score-batch (CSV or Parquet).")],
    row: Annotated[int, typer.Option("--row", help="Which row (0-based).", min=0)] = 0,
) -> None:
    """Which model made this prediction: the version, its artifact (checked), the scoring run, the training data."""
    import pandas as pd

    from prefect_model_registry.flows.scoring import STAMPS

    frame = pd.read_parquet(file) if file.suffix.lower() in (".parquet", ".pq") else pd.read_csv(file)
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
        "prediction": stamp.get("prediction"),
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
    lines = [
        f"row {row}: prediction {data['prediction']} made by {mv.uri} (artifact sha256 {mv.artifact.sha256[:12]}, "
        "matches the manifest)",
        f"scoring run {data['scoring_run']} at {data['scored_at']}"
        + (f", input {data['input']}" if runs else " (not recorded in the registry)"),
        f"trained on {lin.dataset_uri} ({lin.dataset_fingerprint}), code {lin.code_version}, flow run "
        f"{lin.flow_run_id}",
        f"training data: pmr dataset {mv.name} {mv.version} -o FILE"
        if lin.dataset_snapshot
        else f"training data not kept: {lin.dataset_snapshot_note}",
    ]
    emit(data, lines)
