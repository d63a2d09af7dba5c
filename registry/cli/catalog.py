"""``pmr describe``, ``pmr tag``, ``pmr untag`` and ``pmr diff``: edit and compare versions (registered on the CLI).

Edits are audit events; the manifests stay as registered and ``verify`` keeps passing.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from prefect_model_registry.registry.cli.context import (
    KEY_HELP,
    SafeTable,
    app,
    current,
    emit,
    old_shape,
    op_key,
    open_registry,
    pairs,
)
from prefect_model_registry.registry.models import Lineage, ModelVersion


@app.command()
def describe(
    name: str,
    version: Annotated[str | None, typer.Argument(help="The version to describe.")] = None,
    text: Annotated[str | None, typer.Argument(help="The description.")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Describe the model itself (TEXT), not a version.")
    ] = None,
    old_version: Annotated[int | None, typer.Option("--version", hidden=True)] = None,
    key: Annotated[str | None, typer.Option("--key", help=KEY_HELP)] = None,
) -> None:
    """Set the description of VERSION (``pmr describe NAME VERSION TEXT``) or of the model (``--model TEXT``).

    Each is an audit event; the manifest keeps the description it was registered with.
    """
    if model is not None and version is None and text is None and old_version is None:
        target, description = None, model
    elif model is None and old_version is None and version is not None and version.isdigit() and text is not None:
        target, description = int(version), text
    else:
        old_shape("pmr describe NAME VERSION TEXT, or pmr describe NAME --model TEXT for the model itself")
    reg, actor = open_registry(), current().actor
    event = reg.describe(name, target, description, actor=actor, operation_key=op_key(key, "describe"))
    emit(event.model_dump(mode="json"), str(event))


@app.command()
def tag(
    name: str,
    version: int,
    tags: Annotated[list[str], typer.Argument(help="KEY=VALUE pairs.")],
    key: Annotated[str | None, typer.Option("--key", help=KEY_HELP)] = None,
) -> None:
    """Set tags on a version (one audit event)."""
    event = open_registry().tag(
        name, version, pairs(tags, "tag"), actor=current().actor, operation_key=op_key(key, "tag")
    )
    emit(event.model_dump(mode="json"), str(event))


@app.command()
def untag(
    name: str,
    version: int,
    keys: Annotated[list[str], typer.Argument(help="Tag keys to remove.")],
    key: Annotated[str | None, typer.Option("--key", help=KEY_HELP)] = None,
) -> None:
    """Remove tags from a version (one audit event)."""
    event = open_registry().tag(name, version, remove=keys, actor=current().actor, operation_key=op_key(key, "untag"))
    emit(event.model_dump(mode="json"), str(event))


def _lineage(mv: ModelVersion) -> dict[str, Any]:
    lin = mv.lineage
    return {
        "dataset": lin.dataset_uri,
        "dataset fingerprint": lin.dataset_fingerprint,
        "code commit": lin.code_version,
        "code dirty": lin.code_dirty,
        **_code_and_checks(lin),
        "python": lin.python_version,
        **{f"package {k}": v for k, v in sorted(lin.packages.items())},
        "flow run": lin.flow_run_id,
        "parent version": lin.parent_version,
    }


def _code_and_checks(lin: Lineage) -> dict[str, Any]:
    """The trainer's code and the checks' hashes, in full; only those recorded (older versions have none)."""
    distribution = lin.trainer_distribution and f"{lin.trainer_distribution} {lin.trainer_distribution_version or '?'}"
    found = {
        "trainer": lin.trainer,
        "trainer sha256": lin.trainer_sha256,
        "trainer distribution": distribution,
        "trainer commit": lin.trainer_commit,
        "trainer dirty": lin.trainer_dirty,
        "suite": lin.suite,
        "suite sha256": lin.suite_sha256,
        "thresholds": lin.thresholds,
        "thresholds sha256": lin.thresholds_sha256,
        "config sha256": lin.config_sha256,
    }
    return {field: value for field, value in found.items() if value is not None}


def compare(a: ModelVersion, b: ModelVersion) -> dict[str, list[dict[str, Any]]]:
    """Two versions side by side: metrics with deltas, params, tags and lineage (rows that differ marked)."""

    def rows(left: dict[str, Any], right: dict[str, Any], delta: bool = False) -> list[dict[str, Any]]:
        out = []
        for field in sorted(set(left) | set(right)):
            x, y = left.get(field), right.get(field)
            row: dict[str, Any] = {"field": field, "a": x, "b": y, "differs": x != y}
            if delta and isinstance(x, int | float) and isinstance(y, int | float):
                row["delta"] = y - x
            out.append(row)
        return out

    return {
        "metrics": rows(a.metrics, b.metrics, delta=True),
        "params": rows(a.params, b.params),
        "tags": rows(a.tags, b.tags),
        "lineage": rows(_lineage(a), _lineage(b)),
    }


@app.command()
def diff(name: str, a: int, b: int) -> None:
    """Compare versions A and B: metrics with deltas, params, tags and lineage side by side."""
    reg = open_registry()
    state = reg.state(name)
    left, right = reg.view(name, a, state), reg.view(name, b, state)
    sections = compare(left, right)
    table = SafeTable("", "field", f"v{a}", f"v{b}", "Δ / differs")
    for section, items in sections.items():
        for row in items:
            mark = f"{row['delta']:+.4g}" if "delta" in row else ("≠" if row["differs"] else "")
            table.add_row(section, row["field"], str(row["a"]), str(row["b"]), mark)
    emit({"a": a, "b": b, **sections}, table)
