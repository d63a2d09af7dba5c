"""``pmr verify``, ``pmr gc``, ``pmr delete-model``, ``pmr copy``, ``pmr import-mlflow``: upkeep, moving versions in.

See ``retention`` for what is kept, what goes and why history stays whole, and
:mod:`prefect_model_registry.registry.interop.copy` for what a copy carries.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from prefect_model_registry.registry.cli.context import SafeTable, app, current, echo, emit, open_registry, stdout
from prefect_model_registry.registry.cli.progress import transfer_bar
from prefect_model_registry.registry.core import keys, retention
from prefect_model_registry.registry.errors import InvalidMetadata
from prefect_model_registry.registry.interop import copy as transfer
from prefect_model_registry.registry.interop import mlflow_import
from prefect_model_registry.registry.registry import Registry


def _show(result: retention.GcResult, how: str) -> None:
    verb = "deleted" if result.applied else "would delete"
    table = SafeTable("version", "outcome")
    for version in result.deleted:
        table.add_row(f"v{version}", Text(verb, style="red"))
    for version, why in sorted(result.kept.items()):
        table.add_row(f"v{version}", f"kept: {why}")
    lines = [
        f"{result.model}: {verb} {len(result.deleted)} version(s), {len(result.blobs_deleted)} blob(s)",
    ]
    if result.blobs_young:
        lines.append(f"{len(result.blobs_young)} blob(s) younger than the grace period left for a later run")
    if result.uploads_aborted:
        done = "aborted" if result.applied else "would abort"
        lines.append(f"{done} {len(result.uploads_aborted)} unfinished multipart upload(s) older than the grace period")
    if result.sweep_error:
        lines.append(f"the blob sweep stopped ({result.sweep_error}): run the command again to finish it")
    if not result.applied and result.deleted:
        lines.append(f"dry run: nothing was written ({how})")
    emit(result.to_dict(), table)
    if not current().json:
        for line in lines:
            echo(line)


@app.command()
def gc(
    name: str,
    keep_last: Annotated[int | None, typer.Option(help="Keep the N highest version numbers.")] = None,
    older_than: Annotated[
        str | None, typer.Option(help="Only remove versions registered longer ago than this (90d, 12h, 2w).")
    ] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Do it (the default is a dry run).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go (the default).")] = False,
    reason: Annotated[str, typer.Option(help="Why, kept in the audit event.")] = "",
    grace: Annotated[
        str, typer.Option(help="Leave blobs written more recently than this (a write may be in flight).")
    ] = "1h",
) -> None:
    """Remove old versions' bytes, keeping production, staging, aliased, rollback and parent versions.

    Each removal is a `deleted` audit event; manifests and history stay, so `pmr verify` keeps passing.
    """
    if apply and dry_run:
        raise typer.BadParameter("give --apply or --dry-run, not both")
    result = open_registry().gc(
        name,
        keep_last=keep_last,
        older_than=retention.parse_age(older_than) if older_than is not None else None,
        apply=apply,
        reason=reason,
        actor=current().actor,
        grace_s=retention.parse_age(grace).total_seconds(),
    )
    _show(result, "add --apply to do it")


@app.command("delete-model")
def delete_model(
    name: str,
    confirm: Annotated[
        str | None, typer.Option(help="Repeat the model's name to delete every version (else a dry run).")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why, kept in the audit event.")] = "",
    grace: Annotated[str, typer.Option(help="Leave blobs written more recently than this.")] = "1h",
) -> None:
    """Delete a whole model: every version, whatever its stage (history and manifests stay)."""
    result = open_registry().delete_model(
        name, confirm=confirm, reason=reason, actor=current().actor, grace_s=retention.parse_age(grace).total_seconds()
    )
    _show(result, f"repeat the name to do it: pmr delete-model {name} --confirm {name}")


@app.command()
def copy(
    uri: str,
    to: Annotated[str, typer.Option("--to", help="The target registry: s3://bucket/prefix or a directory.")],
    name: Annotated[str | None, typer.Option(help="The model name in the target (default: the same).")] = None,
) -> None:
    """Copy one version (models:/NAME/V, NAME@ALIAS) into another registry, verified by hash, with its lineage.

    Stages, aliases and approvals stay behind: the target's own lifecycle and policy decide them. Running it
    again returns the version the first run made. Within one S3 endpoint the bytes are copied server-side;
    above 8 MiB a progress bar is drawn on stderr when it is a terminal (never with --json).
    """
    with transfer_bar() as progress:
        copied = transfer.copy_version(
            open_registry(), uri, Registry.open(to), name=name, actor=current().actor, progress=progress
        )
    emit(
        {"uri": copied.uri, "registry": to, "copied_from": copied.lineage.copied_from},
        f"copied {uri} to {to} as {copied.uri} (sha256 {copied.artifact.sha256[:12]}…, verified)",
    )


@app.command("import-mlflow")
def import_mlflow(
    tracking_uri: Annotated[
        str,
        typer.Option(
            "--tracking-uri", help="The MLflow server: http(s)://host:port (user:password@ is basic auth, never shown)."
        ),
    ],
    model: Annotated[list[str], typer.Option("--model", help="Only this registered model; repeatable.")] = [],  # noqa: B006
    allow_artifact_root: Annotated[
        list[str],
        typer.Option(
            "--allow-artifact-root",
            help="Also read artifacts the server places under this directory or s3://bucket/prefix (with this "
            "machine's credentials); repeatable. By default only the server's artifact proxy is read.",
        ),
    ] = [],  # noqa: B006
) -> None:
    """Import an MLflow model registry (versions, artifacts, runs' params and metrics, stages, aliases, tags).

    Oldest first, with MLflow's creation times and users in the events; run it again to bring only what changed.
    A version over PMR_MLFLOW_MAX_VERSION_BYTES (default 2 GiB) or PMR_MLFLOW_MAX_VERSION_FILES (10,000), or
    whose model this registry refuses, is skipped and listed.
    """
    with transfer_bar() as progress:
        report = mlflow_import.import_mlflow(
            open_registry(),
            tracking_uri,
            models=model or None,
            actor=current().actor,
            say=lambda line: echo(line, err=True),
            allowed_roots=allow_artifact_root,
            progress=progress,
        )
    table = SafeTable("model", "new versions", "already here", "changes", "warnings", "skipped")
    for name, done in report.items():
        table.add_row(
            name,
            ", ".join(f"{k}→v{v}" for k, v in done.registered.items()) or "-",
            str(len(done.existing)),
            "; ".join(done.changes) or "-",
            "; ".join(done.warnings) or "-",
            "; ".join(f"v{k}: {why}" for k, why in done.skipped.items()) or "-",
        )
    emit({name: asdict(done) for name, done in report.items()}, table)


@app.command()
def verify(
    name: Annotated[str | None, typer.Argument(help="One model (default all).")] = None,
    against: Annotated[
        Path | None, typer.Option(help="A saved `pmr verify --json` output: each model's head must be unchanged.")
    ] = None,
    repair: Annotated[bool, typer.Option("--repair", help="List what is safe to clean (a dry run).")] = False,
    apply: Annotated[bool, typer.Option("--apply", help="With --repair: do it.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (with each model's head).")] = False,
    save: Annotated[
        bool, typer.Option("--save", help="Store the result and its time in the registry (the dashboard shows it).")
    ] = False,
) -> None:
    """Check integrity: blobs, manifests, hash chains, snapshots, reports, claims. Exit 1 on any error.

    --json includes each model's head (last event and its SHA-256): keep it outside the bucket and pass it
    back with --against to detect a rewrite of the newest events. --save stores the --json result with its time
    under maintenance/verify.json in the registry (overwriting the last one) for `pmr ui`'s audit page; it is the
    only thing verify writes, and only after a check of every model. --repair cleans only what is safe (temporary
    files and orphan blobs older than an hour, stale claims, an unusable hint, lost claims) and never history.
    """
    from prefect_model_registry.registry.maintenance.repair import repair as run_repair
    from prefect_model_registry.registry.maintenance.verify import verify as run_verify

    current().json = current().json or as_json
    reg = open_registry()
    if apply and not repair:
        raise InvalidMetadata("--apply goes with --repair")
    if save and (repair or name is not None):
        raise InvalidMetadata("--save records a check of every model: drop --repair and NAME")
    if repair:
        actions = run_repair(reg, apply=apply)
        table = SafeTable("action", "key", "why")
        for a in actions:
            table.add_row(a["action"], a["key"], a["why"])
        verb = "done" if apply else "to do (dry run; add --apply)"
        emit({"applied": apply, "actions": actions}, table if actions else "nothing to repair")
        if actions and not current().json:
            stdout().print(Text(f"{len(actions)} actions {verb}"))
        return
    expected = None
    if against is not None:
        try:
            expected = json.loads(against.read_text())["heads"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidMetadata(f"--against {against}: not a saved `pmr verify --json` output ({exc})") from None
    report = run_verify(reg, name, expected_heads=expected)
    table = SafeTable("severity", "kind", "model", "key", "problem")
    for f in report.findings:
        table.add_row(f.severity, f.kind, f.model, f.key, f.problem)
    summary = (
        f"{'OK' if report.ok else 'PROBLEMS FOUND'}: {report.models} models, {report.versions} versions, "
        f"{report.events} events, {report.blobs} blobs checked"
    )
    if save:
        saved = {"saved_at": datetime.now(UTC).isoformat(), "against": str(against) if against else None}
        reg.store.put(keys.VERIFY_RESULT, json.dumps({**saved, "report": report.to_dict()}, indent=1).encode())
    if current().json:
        emit(report.to_dict())
    else:
        if report.findings:
            stdout().print(table)
        stdout().print(Text(summary))
        if save:
            stdout().print(Text(f"saved to {keys.VERIFY_RESULT} (pmr ui's audit page shows it)"))
    if not report.ok:
        raise typer.Exit(1)
