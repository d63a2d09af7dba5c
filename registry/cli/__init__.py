"""``pmr``: the registry from the command line. A thin layer over :class:`registry.Registry`.

Exit codes: 0 done, 1 the operation was refused or failed, 2 bad usage or input.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from prefect_model_registry.registry.cli.context import (
    KEY_HELP,
    SafeTable,
    app,
    current,
    emit,
    err,
    error_line,
    op_key,
    open_registry,
    pairs,
    parse_metrics,
    parse_param,
    run,
)
from prefect_model_registry.registry.cli.progress import transfer_bar
from prefect_model_registry.registry.core.display import visible
from prefect_model_registry.registry.errors import InvalidMetadata
from prefect_model_registry.registry.events import describe_change
from prefect_model_registry.registry.models import Event, Lineage, ModelVersion, VersionInfo


def _version_row(mv: ModelVersion, stage: str, aliases: list[str]) -> list[str]:
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(mv.metrics.items()))
    return [
        str(mv.version),
        stage,
        ", ".join(aliases),
        metrics,
        mv.created_by,
        mv.created_at.isoformat()[:19],
    ]


@app.command()
def register(
    name: str,
    file: Path,
    metric: Annotated[list[str], typer.Option("--metric", "-m", help="KEY=VALUE, repeatable.")] = [],  # noqa: B006
    param: Annotated[list[str], typer.Option("--param", "-p", help="KEY=VALUE (JSON value), repeatable.")] = [],  # noqa: B006
    tag: Annotated[list[str], typer.Option("--tag", "-t", help="KEY=VALUE, repeatable.")] = [],  # noqa: B006
    dataset: Annotated[str | None, typer.Option(help="URI of the training data.")] = None,
    description: Annotated[str, typer.Option(help="What this version is.")] = "",
    fmt: Annotated[str | None, typer.Option("--format", help="skops, pickle, joblib or bytes.")] = None,
    key: Annotated[
        str | None, typer.Option("--key", "--idempotency-key", help="Retries with this key get the same version.")
    ] = None,
    allow_missing_dataset: Annotated[
        bool, typer.Option(help="Register even if --dataset cannot be read (recorded without a fingerprint).")
    ] = False,
    snapshot: Annotated[
        bool,
        typer.Option(help="Keep a copy of --dataset in the registry (up to PMR_SNAPSHOT_MAX_BYTES, 100 MiB)."),
    ] = True,
) -> None:
    """Register a model file trained outside the flows (a notebook, a CI job).

    Without --key the key is derived from the file's bytes, the metadata given and who runs it: running the same
    command again (a retry after a crash or a timeout) returns the version it made instead of a duplicate. Pass a new
    --key to register identical bytes and metadata as a new version on purpose. The lineage (code version,
    environment, dataset fingerprint) is completed by the registry as on every registration path. The file is
    hashed once and streamed, never read whole (in parts above PMR_MULTIPART_THRESHOLD; an interrupted upload
    resumes on the retry); above 8 MiB a progress bar is drawn on stderr when it is a terminal (never with --json).
    """
    info = VersionInfo(
        metrics=parse_metrics(metric),
        params={k: parse_param(v) for k, v in pairs(param, "param").items()},
        tags=pairs(tag, "tag"),
        description=description,
        lineage=Lineage(dataset_uri=dataset),
    )
    if not file.is_file():
        raise InvalidMetadata(f"model file {file} does not exist")
    from prefect_model_registry.registry.core import artifacts
    from prefect_model_registry.registry.core.checks import check_info
    from prefect_model_registry.registry.core.transfer import Source
    from prefect_model_registry.registry.names import check_model_name

    # Bad input is refused before a byte is read (a large file takes a while to hash).
    checked_name, checked_info = check_model_name(name), check_info(info)
    artifacts.check_format(fmt or artifacts.format_for(file))
    with transfer_bar() as progress:
        # Hashed once, in chunks: the same digest names the blob and (without --key) feeds the operation key.
        source = Source.of_path(file, progress)
        if source.size == 0:
            raise InvalidMetadata(f"model file {file} is empty")
        if key is None:
            from prefect_model_registry.registry.core.idempotency import request_fingerprint
            from prefect_model_registry.registry.core.identity import identity_key, resolve_actor

            request = request_fingerprint(checked_name, fmt or "auto", checked_info)
            # Bound to who runs it: their retry finds their version; someone else's identical command makes theirs.
            who = hashlib.sha256(identity_key(resolve_actor(current().actor)).encode()).hexdigest()[:16]
            key = f"pmr:register:{source.digest}:{request}:{who}"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mv = open_registry().register(
                name,
                source,
                info,
                fmt=fmt or artifacts.format_for(file),
                actor=current().actor,
                operation_key=key,
                allow_missing_dataset=allow_missing_dataset,
                snapshot_dataset=snapshot,
                progress=progress,
            )
    for warning in caught:
        err.print(error_line("warning:", "yellow", warning.message), soft_wrap=True)
    emit(
        mv.model_dump(mode="json"),
        Text.assemble("registered ", (mv.uri, "bold"), f" (sha256 {mv.artifact.sha256[:12]})"),
    )


@app.command()
def models() -> None:
    """List models with their production and staging versions."""
    rows = open_registry().overview()
    table = SafeTable("model", "latest", "production", "staging", "aliases")
    for r in rows:
        production = [r["production"]] if r["production"] else []
        table.add_row(
            r["name"],
            str(r["latest"]) + (" (deleted)" if r["deleted"] else ""),
            _marked(production, r["blocked"]),
            _marked(r["staging"], r["blocked"]),
            ", ".join(f"{a}→v{v}" for a, v in r["aliases"].items()) or "-",
        )
    emit(rows, table)


def _marked(versions: list[int], blocked: dict[int, list[str]]) -> Text:
    """Versions as ``2, 3 (blocked: rejected)``: one that may not be promoted says so, and why."""
    if not versions:
        return Text("-")
    parts = []
    for v in versions:
        reasons = blocked.get(v)
        part = Text(str(v))
        if reasons:
            part.append(" ").append(visible(f"(blocked: {', '.join(reasons)})"), "red")
        parts.append(part)
    return Text(", ").join(parts)


@app.command()
def versions(
    name: str,
    limit: Annotated[int, typer.Option(help="At most N versions (the newest, unless --sort).")] = 50,
    stage: Annotated[str | None, typer.Option(help="Only versions at this stage.")] = None,
    tag: Annotated[list[str], typer.Option("--tag", help="KEY=VALUE the version must carry; repeatable.")] = [],  # noqa: B006
    where: Annotated[list[str], typer.Option("--where", help="METRIC OP NUMBER, e.g. roc_auc>=0.9; repeatable.")] = [],  # noqa: B006
    sort: Annotated[str | None, typer.Option(help="A metric (-roc_auc: descending), version or created_at.")] = None,
) -> None:
    """List versions of a model with their stage, aliases and metrics; filter and sort them."""
    reg = open_registry()
    st = reg.state(name)
    found = reg.search(name, stage=stage, tags=pairs(tag, "tag"), where=where, sort=sort, limit=limit)
    by_version: dict[int, list[str]] = {}
    for alias, v in st.aliases.items():
        by_version.setdefault(v, []).append(alias)
    data = [
        {**mv.model_dump(mode="json"), "stage": st.stage_of(mv.version), "blocked": st.blocked.get(mv.version, [])}
        for mv in found
    ]
    table = SafeTable("version", "stage", "aliases", "metrics", "created by", "created at (UTC)")
    for mv in found:
        row: list[str | Text] = [*_version_row(mv, st.stage_of(mv.version), sorted(by_version.get(mv.version, [])))]
        blocked = st.blocked.get(mv.version)
        if blocked:  # a version that cannot be promoted says so, and why (failed gates, a rejection)
            row[1] = Text.assemble(visible(row[1]), " ", (visible(f"(blocked: {', '.join(blocked)})"), "red"))
        table.add_row(*row)
    emit(data, table)


@app.command()
def show(uri: str) -> None:
    """Show one version: models:/NAME/VERSION, NAME@production, NAME@ALIAS, NAME/latest."""
    reg = open_registry()
    registered = reg.resolve(uri)
    st = reg.state(registered.name)
    mv = reg.view(registered.name, registered.version, state=st)  # current description and tags
    data = {
        **mv.model_dump(mode="json"),
        "stage": st.stage_of(mv.version),
        "aliases": sorted(a for a, v in st.aliases.items() if v == mv.version),
        "blocked": st.blocked.get(mv.version, []),
        "deleted": mv.version in st.deleted,
    }
    emit(data, json.dumps(data, indent=2, default=str).splitlines())


@app.command()
def download(
    uri: str,
    out: Annotated[Path, typer.Option("--output", "-o", "--out", help="The file to write.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Download the artifact of a version (models:/NAME/VERSION, NAME@ALIAS) to a file, verified by SHA-256.

    The bytes go to a temporary file beside OUTPUT and take its name only once they hash to the manifest's
    SHA-256: a corrupt or missing blob is refused (exit 1) and nothing is left at OUTPUT. OUTPUT is never
    written through a symlink (refused, exit 1); an existing file is replaced only with --force (else exit 2).
    Memory stays bounded whatever the size.
    """
    with transfer_bar() as progress:
        mv = open_registry().download(uri, out, force=force, progress=progress)
    emit(
        {"uri": mv.uri, "out": str(out), "sha256": mv.artifact.sha256, "bytes": mv.artifact.size},
        f"wrote {out}: {mv.artifact.size} bytes of {mv.uri}, sha256 {mv.artifact.sha256} (verified)",
    )


@app.command()
def dataset(
    name: str,
    version: int,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the bytes.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Restore the exact training data of NAME VERSION from its snapshot in the registry (hash-checked).

    The snapshot is streamed to a temporary file beside OUT and takes its name only once verified. OUT is never
    written through a symlink (refused, exit 1); an existing file is replaced only with --force.
    """
    from prefect_model_registry.registry.core.files import refuse_symlink

    if refuse_symlink(out, "--out").exists() and not force:
        raise InvalidMetadata(f"{out} exists; pass --force to overwrite it")
    reg = open_registry()
    mv = reg.get_version(name, version)
    with transfer_bar() as progress:
        reg.download_dataset(mv.uri, out, force=force, progress=progress)
    size = out.stat().st_size
    info = {"version": mv.uri, "dataset_uri": mv.lineage.dataset_uri, "sha256": mv.lineage.dataset_snapshot}
    emit(
        info | {"out": str(out), "bytes": size},
        f"wrote {out}: {size} bytes, the data {mv.uri} was trained on",
    )


@app.command()
def predictions(
    name: str, version: Annotated[int | None, typer.Option("--version", help="Only this version's runs.")] = None
) -> None:
    """List the scoring runs that used NAME's versions: run, version, rows, input and output."""
    runs = open_registry().scoring_runs(name, version)
    data = [{"version": e.version, "at": e.at.isoformat(), "actor": e.actor, **e.data} for e in runs]
    table = SafeTable("version", "scored at (UTC)", "run", "rows", "input", "output")
    for row in data:
        table.add_row(
            str(row["version"]),
            row["at"][:19],
            str(row.get("run")),
            str(row.get("rows")),
            str(row.get("input_uri")),
            str(row.get("output_uri")),
        )
    emit(data, table if data else f"no scoring run used {name}" + (f" v{version}" if version else ""))


@app.command()
def lineage(name: str, version: int) -> None:
    """Show where a version came from, and its ancestors through parent versions.

    Besides the data and the run: the trainer's code (file hash, distribution, its repository's commit, ``dirty``
    with uncommitted or untracked files) and the SHA-256 of the suite, thresholds and config the run used.
    """
    chain = open_registry().lineage(name, version)
    data = [
        {
            "version": mv.version,
            # Every field, null when not recorded (manifests leave an unrecorded trainer or check out).
            **dict.fromkeys(Lineage.model_fields),
            **mv.lineage.model_dump(mode="json"),
            "metrics": mv.metrics,
            "params": mv.params,
            "created_by": mv.created_by,
            "created_at": mv.created_at,
        }
        for mv in chain
    ]
    table = SafeTable("version", "dataset", "fingerprint", "code", "flow run", "parent", "trainer", "checks", "metrics")
    for mv, d in zip(chain, data, strict=True):
        table.add_row(
            str(mv.version),
            str(d["dataset_uri"] or "-"),
            str(d["dataset_fingerprint"] or "-")[:19],
            str(d["code_version"] or "-")[:12],
            str(d["flow_run_id"] or "-"),
            str(d["parent_version"] or "-"),
            _lines(trainer_lines(mv.lineage)),
            _lines(checks_lines(mv.lineage)),
            ", ".join(f"{k}={v:.4g}" for k, v in mv.metrics.items()),
        )
    emit(data, table)


def trainer_lines(lin: Lineage) -> list[str]:
    """The trainer's code in a few short lines: spec, file hash, distribution, commit (hashes cut to 12)."""
    if not lin.trainer:
        return []
    lines = [lin.trainer]
    if lin.trainer_sha256:
        lines.append(f"sha256 {lin.trainer_sha256[:12]}")
    if lin.trainer_distribution:
        lines.append(f"{lin.trainer_distribution} {lin.trainer_distribution_version or '?'}")
    if lin.trainer_commit:
        lines.append(f"commit {lin.trainer_commit[:12]}" + (" dirty" if lin.trainer_dirty else ""))
    else:
        lines.append("not in a git repository")
    return lines


def checks_lines(lin: Lineage) -> list[str]:
    """The suite, thresholds and config hashes the run used, one line each (cut to 12)."""
    found = (("suite", lin.suite_sha256), ("thresholds", lin.thresholds_sha256), ("config", lin.config_sha256))
    return [f"{what} {digest[:12]}" for what, digest in found if digest]


def _lines(lines: list[str]) -> Text:
    # Each line shown as typed (stored text never starts a line of its own), joined by this package's newlines.
    return Text("\n").join(Text(visible(line)) for line in lines) if lines else Text("-")


@app.command()
def history(
    name: str,
    at: Annotated[
        datetime | None, typer.Option(help="Show the stages and aliases as they were at this time (ISO).")
    ] = None,
) -> None:
    """Show the audit log of a model, or its state at a past time with --at."""
    reg = open_registry()
    if at is not None:
        when = at if at.tzinfo else at.astimezone()
        st = reg.state_at(name, when)
        data = {"at": when, "production": st.production, "stages": st.stages, "aliases": st.aliases}
        emit(
            data,
            f"at {when.isoformat()}: production = {st.production or 'none'}; stages {st.stages}; aliases {st.aliases}",
        )
        return
    events = reg.history(name)
    table = SafeTable("#", "time (UTC)", "event", "actor", "reason", "run")
    for e in events:
        table.add_row(str(e.seq), e.at.isoformat()[:19], describe_change(e), e.actor, e.reason, e.run_id or "")
    emit([e.model_dump(mode="json") for e in events], table)


@app.command()
def promote(
    name: str,
    version: int,
    to: Annotated[str, typer.Option("--to", help="staging, production, archived or none.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    key: Annotated[str | None, typer.Option("--key", help=KEY_HELP)] = None,
    break_glass: Annotated[
        bool,
        typer.Option(
            "--break-glass", help="Incidents only: skip the approval the model's policy requires (logged as such)."
        ),
    ] = False,
    through_staging: Annotated[
        bool,
        typer.Option(
            "--through-staging",
            help="With --to production: a version not yet staged goes through staging in the same event, "
            "with the checks of both steps.",
        ),
    ] = False,
    alias: Annotated[
        list[str] | None,
        typer.Option("--alias", help="An alias to point at the version in the same event (repeat), e.g. champion."),
    ] = None,
) -> None:
    """Move a version to a stage; promoting to production archives the current one atomically.

    A stage the model's approval policy protects (`pmr policy show`) needs a recorded approval (`pmr approve`)
    first; --break-glass overrides that for an incident and is logged as a `break_glass` event with the reason.
    Gates that failed and rejections still block. A protected alias (champion, with production) moves with the
    promotion that covers it: --alias champion.
    """
    event = open_registry().promote(
        name,
        version,
        to,
        actor=current().actor,
        reason=reason,
        operation_key=op_key(key, "promote"),
        break_glass=break_glass,
        through_staging=through_staging,
        aliases=alias or [],
    )
    emit(event.model_dump(mode="json"), str(event))


@app.command()
def alias(
    name: str,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS")],
    version: Annotated[int | None, typer.Argument()] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the alias instead.")] = False,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
    key: Annotated[str | None, typer.Option("--key", help=KEY_HELP)] = None,
) -> None:
    """Point ALIAS at VERSION (moving it), or remove it with --remove."""
    reg = open_registry()
    operation = op_key(key, "alias")
    event: Event | None
    if remove:
        event = reg.remove_alias(name, alias_name, actor=current().actor, reason=reason, operation_key=operation)
    elif version is None:
        raise InvalidMetadata("give a VERSION, or --remove")
    else:
        event = reg.set_alias(name, alias_name, version, actor=current().actor, reason=reason, operation_key=operation)
    if event is None:
        emit({"unchanged": True}, f"alias {alias_name!r} already points at v{version}")
    else:
        emit(event.model_dump(mode="json"), str(event))


@app.command()
def rollback(
    name: str,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    move_aliases: Annotated[
        bool, typer.Option("--move-aliases", help="Move the rolled-back version's aliases too (same event).")
    ] = False,
    key: Annotated[str | None, typer.Option("--key", help=KEY_HELP)] = None,
    break_glass: Annotated[
        bool,
        typer.Option("--break-glass", help="Incidents only: restore it even if it was rejected or failed a gate."),
    ] = False,
) -> None:
    """Put back the previous production version, archiving the current one (never a rejected or blocked one)."""
    event = open_registry().rollback(
        name,
        actor=current().actor,
        reason=reason,
        move_aliases=move_aliases,
        operation_key=op_key(key, "rollback"),
        break_glass=break_glass,
    )
    emit(event.model_dump(mode="json"), str(event))


# Commands kept in their own modules register themselves on ``app``.
from prefect_model_registry.registry.cli import catalog, maintenance, policy, ui  # noqa: E402, F401


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (see ``context.run``): typed errors become one red line and exit 1 or 2."""
    run(argv)
