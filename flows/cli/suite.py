"""``pmr suite init``: a first data-quality suite and thresholds for your own data, to edit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefect_model_registry.registry.cli.context import emit

app = typer.Typer(help="Data-quality suites for your own data.", no_args_is_help=True)


@app.command("init")
def init(
    data: Annotated[str, typer.Argument(help="The dataset to profile: CSV or Parquet, a path or s3://.")],
    target: Annotated[str, typer.Option("--target", help="The column a model will predict.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the suite (YAML).")],
    thresholds_out: Annotated[
        Path | None,
        typer.Option("--thresholds-out", help="Where to write the starter thresholds (default: beside the suite)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Suite name (default: the file's stem).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Profile DATA and write a starter suite (-o) and thresholds file that DATA passes; then edit both."""
    from prefect_model_registry.flows.core.training import read_dataset
    from prefect_model_registry.registry.core.files import refuse_symlink, write_file
    from prefect_model_registry.validations import data_quality, profile

    thresholds_path = thresholds_out or out.with_name(f"{out.stem}.thresholds.yaml")
    # Neither file is ever written through a symlink (SymlinkRefused, exit 1), checked before the data is read.
    existing = [str(p) for p in (out, thresholds_path) if refuse_symlink(p, "--out").exists()]
    if existing and not force:
        raise typer.BadParameter(f"{', '.join(existing)} exists; pass --force to overwrite", param_hint="--out")
    frame = read_dataset(data).frame
    suite = profile.profile_suite(frame, target=target, name=name or out.stem)
    out.parent.mkdir(parents=True, exist_ok=True)
    thresholds_path.parent.mkdir(parents=True, exist_ok=True)
    write_file(out, profile.suite_yaml(suite, data).encode("utf-8"), overwrite=force, what="--out")
    write_file(
        thresholds_path,
        profile.thresholds_yaml(profile.starter_thresholds(frame, target=target), data).encode("utf-8"),
        overwrite=force,
        what="--thresholds-out",
    )
    # The promise: the strict loader keeps every expectation, and the data it came from passes.
    report = data_quality.validate_dataframe(frame, out)
    if not report.passed:  # pragma: no cover - a profiling bug; say so rather than hand over a failing suite
        failed = ", ".join(c.name for c in report.failed_checks[:3])
        raise RuntimeError(f"the generated suite fails on its own data ({failed}); please report this")
    emit(
        {"suite": str(out), "thresholds": str(thresholds_path), "expectations": len(suite["expectations"])},
        f"wrote {out} ({len(suite['expectations'])} expectations; {data} passes it) and {thresholds_path}",
    )
