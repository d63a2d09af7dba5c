"""``pmr``: the registry from the command line. A thin layer over :class:`registry.Registry`.

Exit codes: 0 done, 1 the operation was refused or failed, 2 bad usage or input.
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
import warnings
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from prefect_model_registry.registry.core.display import json_text, visible
from prefect_model_registry.registry.errors import InvalidMetadata, InvalidName, InvalidURI, RegistryError
from prefect_model_registry.registry.models import Lineage, ModelVersion, VersionInfo, describe_change
from prefect_model_registry.registry.registry import Registry

app = typer.Typer(
    name="pmr",
    help="Model registry on object storage: versions, lineage, stages, aliases, audit log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def _out() -> Console:
    # Piped output (CI logs, files) is not wrapped at rich's 80-column default.
    return Console() if sys.stdout.isatty() else Console(width=200)


_BAD_INPUT = (InvalidName, InvalidURI, InvalidMetadata)


class _Opts:
    registry: str | None = None
    json: bool = False
    actor: str | None = None


OPTS = _Opts()


@app.callback()
def _global(
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            "-r",
            envvar="PMR_REGISTRY_URI",
            help="s3://bucket/prefix or a directory (default .pmr/registry).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    actor: Annotated[
        str | None, typer.Option("--actor", envvar="PMR_ACTOR", help="Who is acting (default user@host).")
    ] = None,
) -> None:
    OPTS.registry, OPTS.json, OPTS.actor = registry, as_json, actor


def _reg() -> Registry:
    return Registry.open(OPTS.registry)


class SafeTable(Table):
    """A rich table whose text cells are shown as typed: never parsed as markup, controls made visible.

    Styled cells are passed as :class:`rich.text.Text` (built by this package, never from stored text).
    """

    def add_row(self, *renderables: RenderableType | None, **kwargs: Any) -> None:
        """Add a row; ``str`` cells go through ``visible`` as plain text."""
        super().add_row(*(Text(visible(r)) if isinstance(r, str) else r for r in renderables), **kwargs)


def _emit(data: Any, human: Table | Text | str | list[str] | None = None) -> None:
    r"""The one way ``pmr`` prints a result: JSON (exact values) or the human form, stored text shown as typed.

    A ``str`` is one line (a newline in it is shown as ``\n``); a list is one line per item; a :class:`Text`
    or a :class:`SafeTable` is built from parts this package styles.
    """
    if OPTS.json or human is None:
        print(json_text(data))
        return
    if isinstance(human, str):
        human = Text(visible(human))
    elif isinstance(human, list):
        human = Text("\n").join(Text(visible(line)) for line in human)
    _out().print(human)


def echo(message: object, *, err: bool = False) -> None:
    """One plain line (progress, a note) with stored text shown as typed: for commands that print as they go."""
    typer.echo(visible(message), err=err)


def _error_line(label: str, style: str, message: object) -> Text:
    return Text.assemble((label, style), " ", visible(message))


def _pairs(items: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidMetadata(f"--{what} takes KEY=VALUE, got {item!r}")
        pairs[key] = value
    return pairs


def _metrics(items: list[str]) -> dict[str, float]:
    metrics = {}
    for key, value in _pairs(items, "metric").items():
        try:
            metrics[key] = float(value)
        except ValueError:
            raise InvalidMetadata(f"metric {key!r} must be a number, got {value!r}") from None
    return metrics


def _param(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


_KEY_HELP = "Operation key: a retry with the same key returns the outcome that landed (default: one per invocation)."


def _op_key(given: str | None, *parts: object) -> str:
    """The given ``--key``, else a fresh key for this invocation (it is printed with the outcome)."""
    return given if given is not None else f"pmr:{parts[0]}:{uuid.uuid4().hex}"


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
    idempotency_key: Annotated[
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
    environment, dataset fingerprint) is completed by the registry as on every registration path.
    """
    info = VersionInfo(
        metrics=_metrics(metric),
        params={k: _param(v) for k, v in _pairs(param, "param").items()},
        tags=_pairs(tag, "tag"),
        description=description,
        lineage=Lineage(dataset_uri=dataset),
    )
    if not file.is_file():
        raise InvalidMetadata(f"model file {file} does not exist")
    if idempotency_key is None:
        from prefect_model_registry.registry.core.checks import check_info
        from prefect_model_registry.registry.core.idempotency import request_fingerprint
        from prefect_model_registry.registry.core.identity import identity_key
        from prefect_model_registry.registry.names import check_model_name
        from prefect_model_registry.registry.registry import resolve_actor

        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        request = request_fingerprint(check_model_name(name), fmt or "auto", check_info(info))
        # Bound to who runs it: their retry finds their version; someone else's identical command makes their own.
        who = hashlib.sha256(identity_key(resolve_actor(OPTS.actor)).encode()).hexdigest()[:16]
        idempotency_key = f"pmr:register:{digest}:{request}:{who}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mv = _reg().register_file(
            name,
            file,
            info,
            fmt=fmt,
            actor=OPTS.actor,
            idempotency_key=idempotency_key,
            allow_missing_dataset=allow_missing_dataset,
            snapshot_dataset=snapshot,
        )
    for warning in caught:
        err.print(_error_line("warning:", "yellow", warning.message), soft_wrap=True)
    _emit(
        mv.model_dump(mode="json"),
        Text.assemble("registered ", (mv.uri, "bold"), f" (sha256 {mv.artifact.sha256[:12]})"),
    )


@app.command()
def models() -> None:
    """List models with their production and staging versions."""
    rows = _reg().overview()
    table = SafeTable("model", "latest", "production", "staging", "aliases")
    for r in rows:
        table.add_row(
            r["name"],
            str(r["latest"]) + (" (deleted)" if r["deleted"] else ""),
            str(r["production"] or "-"),
            ", ".join(map(str, r["staging"])) or "-",
            ", ".join(f"{a}→v{v}" for a, v in r["aliases"].items()) or "-",
        )
    _emit(rows, table)


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
    reg = _reg()
    st = reg.state(name)
    found = reg.search(name, stage=stage, tags=_pairs(tag, "tag"), where=where, sort=sort, limit=limit)
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
    _emit(data, table)


@app.command()
def show(uri: str) -> None:
    """Show one version: models:/NAME/VERSION, NAME@production, NAME@ALIAS, NAME/latest."""
    reg = _reg()
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
    _emit(data, json.dumps(data, indent=2, default=str).splitlines())


@app.command()
def dataset(
    name: str,
    version: int,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the bytes.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Restore the exact training data of NAME VERSION from its snapshot in the registry (hash-checked).

    OUT is never written through a symlink (refused, exit 1); an existing file is replaced only with --force.
    """
    from prefect_model_registry.registry.core.files import refuse_symlink, write_file

    if refuse_symlink(out, "--out").exists() and not force:
        raise InvalidMetadata(f"{out} exists; pass --force to overwrite it")
    reg = _reg()
    mv = reg.get_version(name, version)
    data = reg.load_dataset(mv.uri)
    write_file(out, data, overwrite=force, what="--out")
    info = {"version": mv.uri, "dataset_uri": mv.lineage.dataset_uri, "sha256": mv.lineage.dataset_snapshot}
    _emit(
        info | {"out": str(out), "bytes": len(data)},
        f"wrote {out}: {len(data)} bytes, the data {mv.uri} was trained on",
    )


@app.command()
def predictions(
    name: str, version: Annotated[int | None, typer.Option("--version", help="Only this version's runs.")] = None
) -> None:
    """List the scoring runs that used NAME's versions: run, version, rows, input and output."""
    runs = _reg().scoring_runs(name, version)
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
    _emit(data, table if data else f"no scoring run used {name}" + (f" v{version}" if version else ""))


@app.command()
def lineage(name: str, version: int) -> None:
    """Show where a version came from, and its ancestors through parent versions."""
    chain = _reg().lineage(name, version)
    data = [
        {
            "version": mv.version,
            **mv.lineage.model_dump(mode="json"),
            "metrics": mv.metrics,
            "params": mv.params,
            "created_by": mv.created_by,
            "created_at": mv.created_at,
        }
        for mv in chain
    ]
    table = SafeTable("version", "dataset", "fingerprint", "code", "flow run", "parent", "metrics")
    for mv, d in zip(chain, data, strict=True):
        table.add_row(
            str(mv.version),
            str(d["dataset_uri"] or "-"),
            str(d["dataset_fingerprint"] or "-")[:19],
            str(d["code_version"] or "-")[:12],
            str(d["flow_run_id"] or "-"),
            str(d["parent_version"] or "-"),
            ", ".join(f"{k}={v:.4g}" for k, v in mv.metrics.items()),
        )
    _emit(data, table)


@app.command()
def history(
    name: str,
    at: Annotated[
        datetime | None, typer.Option(help="Show the stages and aliases as they were at this time (ISO).")
    ] = None,
) -> None:
    """Show the audit log of a model, or its state at a past time with --at."""
    reg = _reg()
    if at is not None:
        when = at if at.tzinfo else at.astimezone()
        st = reg.state_at(name, when)
        data = {"at": when, "production": st.production, "stages": st.stages, "aliases": st.aliases}
        _emit(
            data,
            f"at {when.isoformat()}: production = {st.production or 'none'}; stages {st.stages}; aliases {st.aliases}",
        )
        return
    events = reg.history(name)
    table = SafeTable("#", "time (UTC)", "event", "actor", "reason", "run")
    for e in events:
        table.add_row(str(e.seq), e.at.isoformat()[:19], describe_change(e), e.actor, e.reason, e.run_id or "")
    _emit([e.model_dump(mode="json") for e in events], table)


@app.command()
def promote(
    name: str,
    version: int,
    to: Annotated[str, typer.Option("--to", help="staging, production, archived or none.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    key: Annotated[str | None, typer.Option("--key", help=_KEY_HELP)] = None,
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
    event = _reg().promote(
        name,
        version,
        to,
        actor=OPTS.actor,
        reason=reason,
        operation_key=_op_key(key, "promote"),
        break_glass=break_glass,
        through_staging=through_staging,
        aliases=alias or [],
    )
    _emit(event.model_dump(mode="json"), str(event))


@app.command()
def alias(
    name: str,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS")],
    version: Annotated[int | None, typer.Argument()] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the alias instead.")] = False,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
    key: Annotated[str | None, typer.Option("--key", help=_KEY_HELP)] = None,
) -> None:
    """Point ALIAS at VERSION (moving it), or remove it with --remove."""
    reg = _reg()
    op_key = _op_key(key, "alias")
    if remove:
        event = reg.remove_alias(name, alias_name, actor=OPTS.actor, reason=reason, operation_key=op_key)
    elif version is None:
        raise InvalidMetadata("give a VERSION, or --remove")
    else:
        event = reg.set_alias(name, alias_name, version, actor=OPTS.actor, reason=reason, operation_key=op_key)
    if event is None:
        _emit({"unchanged": True}, f"alias {alias_name!r} already points at v{version}")
    else:
        _emit(event.model_dump(mode="json"), str(event))


@app.command()
def rollback(
    name: str,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    move_aliases: Annotated[
        bool, typer.Option("--move-aliases", help="Move the rolled-back version's aliases too (same event).")
    ] = False,
    key: Annotated[str | None, typer.Option("--key", help=_KEY_HELP)] = None,
    break_glass: Annotated[
        bool,
        typer.Option("--break-glass", help="Incidents only: restore it even if it was rejected or failed a gate."),
    ] = False,
) -> None:
    """Put back the previous production version, archiving the current one (never a rejected or blocked one)."""
    event = _reg().rollback(
        name,
        actor=OPTS.actor,
        reason=reason,
        move_aliases=move_aliases,
        operation_key=_op_key(key, "rollback"),
        break_glass=break_glass,
    )
    _emit(event.model_dump(mode="json"), str(event))


@app.command()
def verify(
    name: Annotated[str | None, typer.Argument(help="One model (default all).")] = None,
    against: Annotated[
        Path | None, typer.Option(help="A saved `pmr verify --json` output: each model's head must be unchanged.")
    ] = None,
    repair: Annotated[bool, typer.Option("--repair", help="List what is safe to clean (a dry run).")] = False,
    apply: Annotated[bool, typer.Option("--apply", help="With --repair: do it.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (with each model's head).")] = False,
) -> None:
    """Check integrity: blobs, manifests, hash chains, snapshots, reports, claims. Exit 1 on any error.

    --json includes each model's head (last event and its SHA-256): keep it outside the bucket and pass it
    back with --against to detect a rewrite of the newest events. --repair cleans only what is safe (temporary
    files and orphan blobs older than an hour, stale claims, an unusable hint, lost claims) and never history.
    """
    from prefect_model_registry.registry.maintenance.repair import repair as run_repair
    from prefect_model_registry.registry.maintenance.verify import verify as run_verify

    OPTS.json = OPTS.json or as_json
    reg = _reg()
    if apply and not repair:
        raise InvalidMetadata("--apply goes with --repair")
    if repair:
        actions = run_repair(reg, apply=apply)
        table = SafeTable("action", "key", "why")
        for a in actions:
            table.add_row(a["action"], a["key"], a["why"])
        verb = "done" if apply else "to do (dry run; add --apply)"
        _emit({"applied": apply, "actions": actions}, table if actions else "nothing to repair")
        if actions and not OPTS.json:
            _out().print(Text(f"{len(actions)} actions {verb}"))
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
    if OPTS.json:
        _emit(report.to_dict())
    else:
        if report.findings:
            _out().print(table)
        _out().print(Text(summary))
    if not report.ok:
        raise typer.Exit(1)


# Commands kept in their own modules register themselves on ``app``.
from prefect_model_registry.registry.cli import catalog, maintenance, policy  # noqa: E402, F401


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: typed errors become one red line and exit 1 or 2.

    Usage errors are typer's own (exit 2); registry errors pass through typer and are reported here.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    # `pmr versions NAME --json` works like `pmr --json versions NAME`: the flag is global, wherever it is given.
    if args and "--json" in args[1:] and args[0] != "--json":
        args = ["--json", *[a for a in args if a != "--json"]]
    try:
        app(args=args, prog_name="pmr")
    except _BAD_INPUT as exc:
        err.print(_error_line("pmr: error:", "red", exc), soft_wrap=True)
        sys.exit(2)
    except RegistryError as exc:
        err.print(_error_line("pmr: error:", "red", exc), soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
