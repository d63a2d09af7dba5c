"""Every ``PMR_*`` environment variable, read in this one place.

:func:`settings` reads ``os.environ`` (or a mapping given to it) each time it is called and returns a frozen
:class:`Settings`: one typed field per variable, parsed and checked, with the default used when the variable is
unset or blank. Nothing is cached, so a variable changed at run time (a test's ``monkeypatch.setenv``, a serving
process's new environment) counts from the next call. A value that cannot be parsed raises
:class:`~prefect_model_registry.registry.errors.InvalidMetadata` naming the variable.

:data:`VARIABLES` lists every variable (name, field, default, description) for documentation; the names are also
module constants (:data:`REGISTRY_URI`, …) so that options reading a variable themselves (typer's ``envvar=``)
name it from here.

This module imports nothing of the project but its errors: every layer, the flows included, may read it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prefect_model_registry.registry.errors import InvalidMetadata

REGISTRY_URI = "PMR_REGISTRY_URI"
ACTOR = "PMR_ACTOR"
CACHE_DIR = "PMR_CACHE_DIR"
S3_DIRECT = "PMR_S3_DIRECT"
MAX_MANIFEST_BYTES = "PMR_MAX_MANIFEST_BYTES"
MAX_EVENT_BYTES = "PMR_MAX_EVENT_BYTES"
MAX_ENTRIES = "PMR_MAX_ENTRIES"
SNAPSHOT_MAX_BYTES = "PMR_SNAPSHOT_MAX_BYTES"
SKOPS_MAX_MEMBERS = "PMR_SKOPS_MAX_MEMBERS"
SKOPS_MAX_UNCOMPRESSED_BYTES = "PMR_SKOPS_MAX_UNCOMPRESSED_BYTES"
SKOPS_MAX_COMPRESSION_RATIO = "PMR_SKOPS_MAX_COMPRESSION_RATIO"
SKOPS_RATIO_MIN_BYTES = "PMR_SKOPS_RATIO_MIN_BYTES"
SKOPS_MAX_SCHEMA_BYTES = "PMR_SKOPS_MAX_SCHEMA_BYTES"
SKOPS_MAX_NODES = "PMR_SKOPS_MAX_NODES"
SKOPS_MAX_DEPTH = "PMR_SKOPS_MAX_DEPTH"
SKOPS_MAX_REFS_PER_MEMBER = "PMR_SKOPS_MAX_REFS_PER_MEMBER"
MLFLOW_MAX_VERSION_BYTES = "PMR_MLFLOW_MAX_VERSION_BYTES"
MLFLOW_MAX_VERSION_FILES = "PMR_MLFLOW_MAX_VERSION_FILES"
TRAINER_MODULES = "PMR_TRAINER_MODULES"
CI_DEPLOYMENT = "PMR_CI_DEPLOYMENT"
MULTIPART_THRESHOLD = "PMR_MULTIPART_THRESHOLD"
MULTIPART_CHUNK = "PMR_MULTIPART_CHUNK"
TRANSFER_CONCURRENCY = "PMR_TRANSFER_CONCURRENCY"
PREFECT_UI_URL = "PMR_PREFECT_UI_URL"
DASHBOARD_URL = "PMR_DASHBOARD_URL"

#: The value of :attr:`Settings.cache_dir` when ``PMR_CACHE_DIR`` turns the cache off.
CACHE_OFF = "off"
_OFF_WORDS = ("off", "none", "0", "false")

# -- parsers: (variable, raw value as set) -> value; a blank value means the default ----------------------------


def _text(name: str, raw: str, default: Any) -> Any:
    return raw or default


def _positive_limit(name: str, raw: str, default: int) -> int:
    """The record limits (manifest, event, entries): a positive integer."""
    if not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidMetadata(f"{name}={raw!r} is not a positive integer")
    return value


def _positive_whole(name: str, raw: str, default: int) -> int:
    """A skops cap: a positive whole number."""
    text = raw.strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidMetadata(f"{name} must be a positive whole number, got {text!r}") from None
    if not value > 0:
        raise InvalidMetadata(f"{name} must be a positive number, got {text!r}")
    return value


def _positive_number(name: str, raw: str, default: float) -> float:
    """A skops ratio: a positive number."""
    text = raw.strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise InvalidMetadata(f"{name} must be a positive number, got {text!r}") from None
    if not value > 0:
        raise InvalidMetadata(f"{name} must be a positive number, got {text!r}")
    return value


def _part_size(name: str, raw: str, default: int) -> int:
    """A multipart part size: at least S3's smallest part, 5 MiB (a smaller one is refused at completion)."""
    value = _positive_whole(name, raw, default)
    if value < 5 * 1024**2:
        raise InvalidMetadata(f"{name} must be at least 5 MiB (5242880 bytes), S3's smallest part; got {value}")
    return value


def _byte_count(name: str, raw: str, default: int) -> int:
    """A size in bytes, 0 or more, written with ASCII digits only."""
    text = raw.strip()
    if not text:
        return default
    if not text.isascii() or not text.isdigit():
        raise InvalidMetadata(f"{name} must be a whole number of bytes, got {text!r}")
    return int(text)


def _mlflow_cap(name: str, raw: str, default: int) -> int:
    """An MLflow import cap: a whole number of bytes or files, 0 or more."""
    text = raw.strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidMetadata(f"{name} must be a whole number of bytes or files, got {text!r}") from None
    if value < 0:
        raise InvalidMetadata(f"{name} must not be negative, got {value}")
    return value


def _optional_text(name: str, raw: str, default: str | None) -> str | None:
    return raw or default


def _web_address(name: str, raw: str, default: str | None) -> str | None:
    """An http(s) address (its trailing slashes dropped)."""
    text = raw.strip()
    if not text:
        return default
    if not text.startswith(("http://", "https://")) or any(c.isspace() for c in text):
        raise InvalidMetadata(f"{name} must be an http:// or https:// address, got {text!r}")
    return text.rstrip("/")


def _cache_dir(name: str, raw: str, default: str | None) -> str | None:
    text = raw.strip()
    if text.lower() in _OFF_WORDS:
        return CACHE_OFF
    return text or default


def _direct(name: str, raw: str, default: bool) -> bool:
    return raw != "0"  # only "0" turns it off, as it always has


def _module_list(name: str, raw: str, default: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _var(name: str, default: Any, parse: Callable[[str, str, Any], Any], doc: str) -> Any:
    """A :class:`Settings` field read from ``name``."""
    return dataclasses.field(default=default, metadata={"env": name, "parse": parse, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Every ``PMR_*`` setting, typed; the defaults are the values used when a variable is unset or blank."""

    #: Where the registry is when no location is given: ``s3://bucket/prefix`` or a directory.
    registry_uri: str = _var(REGISTRY_URI, ".pmr/registry", _text, "the registry's location when none is given")
    #: Who acts when no ``--actor``/``actor`` is given (None: ``user@host``, or the flow and its deployment).
    actor: str | None = _var(ACTOR, None, _optional_text, "who acts when no actor is given (default user@host)")
    #: The artifact cache directory: None for the default location, :data:`CACHE_OFF` when turned off.
    cache_dir: str | None = _var(
        CACHE_DIR,
        None,
        _cache_dir,
        "the verified-artifact cache directory (default $XDG_CACHE_HOME/pmr/artifacts or ~/.cache/pmr/artifacts; "
        "off turns it off)",
    )
    #: Whether the S3 store sends object reads and writes directly (``PMR_S3_DIRECT=0``: everything via boto3).
    s3_direct: bool = _var(S3_DIRECT, True, _direct, "0 sends every S3 request through boto3")
    #: Largest manifest of a version, as stored (bytes).
    max_manifest_bytes: int = _var(
        MAX_MANIFEST_BYTES, 1024 * 1024, _positive_limit, "largest manifest of a version, as stored (bytes)"
    )
    #: Largest audit event, as stored (bytes).
    max_event_bytes: int = _var(MAX_EVENT_BYTES, 256 * 1024, _positive_limit, "largest audit event, as stored (bytes)")
    #: Most tags, params (top-level keys) and metrics of a version, each.
    max_entries: int = _var(
        MAX_ENTRIES, 1_000, _positive_limit, "most tags, params (top-level keys) and metrics of a version, each"
    )
    #: Largest training dataset a registration keeps a copy of (bytes).
    snapshot_max_bytes: int = _var(
        SNAPSHOT_MAX_BYTES, 100 * 1024 * 1024, _byte_count, "largest dataset a registration keeps a copy of (bytes)"
    )
    #: Most members a skops zip may hold.
    skops_max_members: int = _var(SKOPS_MAX_MEMBERS, 10_000, _positive_whole, "most members a skops zip may hold")
    #: Most bytes a skops zip may hold once decompressed.
    skops_max_uncompressed_bytes: int = _var(
        SKOPS_MAX_UNCOMPRESSED_BYTES, 16 * 1024**3, _positive_whole, "most bytes a skops zip may decompress to"
    )
    #: Highest compression ratio of a skops member, and of the archive as a whole.
    skops_max_compression_ratio: float = _var(
        SKOPS_MAX_COMPRESSION_RATIO,
        100.0,
        _positive_number,
        "highest compression ratio of a skops member and of the archive",
    )
    #: Skops members (and archives) smaller than this uncompressed are not held to the ratio (bytes).
    skops_ratio_min_bytes: int = _var(
        SKOPS_RATIO_MIN_BYTES, 1024**2, _positive_whole, "skops members smaller than this skip the ratio (bytes)"
    )
    #: Largest ``schema.json`` of a skops file (bytes).
    skops_max_schema_bytes: int = _var(
        SKOPS_MAX_SCHEMA_BYTES, 256 * 1024**2, _positive_whole, "largest schema.json of a skops file (bytes)"
    )
    #: Most nodes in a skops schema tree.
    skops_max_nodes: int = _var(SKOPS_MAX_NODES, 1_000_000, _positive_whole, "most nodes in a skops schema tree")
    #: Deepest nesting of skops nodes.
    skops_max_depth: int = _var(SKOPS_MAX_DEPTH, 200, _positive_whole, "deepest nesting of skops nodes")
    #: How many skops nodes may name one member.
    skops_max_refs_per_member: int = _var(
        SKOPS_MAX_REFS_PER_MEMBER, 1, _positive_whole, "how many skops nodes may name one member"
    )
    #: Largest MLflow version an import reads (bytes; streamed to a temporary directory, not held in memory).
    mlflow_max_version_bytes: int = _var(
        MLFLOW_MAX_VERSION_BYTES, 2 * 1024**3, _mlflow_cap, "largest MLflow version an import reads (bytes)"
    )
    #: Most files and directories of an MLflow version an import reads.
    mlflow_max_version_files: int = _var(
        MLFLOW_MAX_VERSION_FILES, 10_000, _mlflow_cap, "most files and directories of an MLflow version an import reads"
    )
    #: Modules a trainer function may come from in a person's own process (comma-separated; not in deployments).
    trainer_modules: tuple[str, ...] = _var(
        TRAINER_MODULES, (), _module_list, "modules a trainer may come from in your own process (comma-separated)"
    )
    #: The deployment ``pmr ci retrain`` runs (``FLOW/DEPLOYMENT``; read by the ``--deployment`` option).
    ci_deployment: str = _var(CI_DEPLOYMENT, "retrain-model/retrain", _text, "the deployment pmr ci retrain runs")
    #: Objects at least this large go to S3 as a multipart upload (and come back by parallel ranged reads).
    multipart_threshold: int = _var(
        MULTIPART_THRESHOLD, 64 * 1024**2, _positive_whole, "objects this large or larger move in parts (bytes)"
    )
    #: The size of one part of a multipart transfer (at least 5 MiB on S3; raised when a file needs > 10,000).
    multipart_chunk: int = _var(
        MULTIPART_CHUNK, 8 * 1024**2, _part_size, "the size of one part of a multipart transfer (bytes, >= 5 MiB)"
    )
    #: Parts in flight at once; bytes held in memory are at most this many parts.
    transfer_concurrency: int = _var(
        TRANSFER_CONCURRENCY, 4, _positive_whole, "parts of one transfer in flight at once"
    )
    #: The Prefect UI's address (e.g. ``http://127.0.0.1:4200``): links to a paused run's page, where its Resume
    #: button is, in ``pmr pending`` and the dashboard. Unset: Prefect's own UI address, when it has one.
    prefect_ui_url: str | None = _var(
        PREFECT_UI_URL,
        None,
        _web_address,
        "the Prefect UI's address, for links to a paused run's page (default: Prefect's PREFECT_UI_URL)",
    )
    #: The ``pmr ui`` dashboard's address (e.g. ``http://127.0.0.1:8000``): the model card and the approval dialog
    #: in Prefect link to the version's page there (``/models/NAME/versions/V``). Unset: no such link.
    dashboard_url: str | None = _var(
        DASHBOARD_URL,
        None,
        _web_address,
        "the pmr ui dashboard's address, for links from the model card and the approval dialog (default: no link)",
    )


@dataclass(frozen=True)
class Variable:
    """One environment variable: the :class:`Settings` field it sets, its default and what it is for."""

    name: str
    field: str
    default: Any
    description: str


#: Every variable by name, in the order of :class:`Settings`.
VARIABLES: dict[str, Variable] = {
    f.metadata["env"]: Variable(f.metadata["env"], f.name, f.default, f.metadata["doc"])
    for f in dataclasses.fields(Settings)
}


def settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings from ``env`` (default ``os.environ``), read now.

    Raises:
        InvalidMetadata: a variable is set to a value it cannot hold (the message names it).

    """
    source = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        raw = source.get(f.metadata["env"])
        values[f.name] = f.default if raw is None else f.metadata["parse"](f.metadata["env"], raw, f.default)
    return Settings(**values)


def table() -> str:
    """:data:`VARIABLES` as a Markdown table (variable, default, description)."""
    rows = ["| variable | default | description |", "| --- | --- | --- |"]
    for var in VARIABLES.values():
        default = "" if var.default in (None, ()) else var.default
        rows.append(f"| `{var.name}` | {default} | {var.description} |")
    return "\n".join(rows)
