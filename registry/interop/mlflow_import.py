"""``pmr import-mlflow``: bring an MLflow model registry's history here, oldest first, safe to run again.

For each registered model, every READY version becomes a version here, in MLflow's order: the model file
(an ``mlflow.sklearn`` model keeps its own format, skops or pickle; any other flavor is kept as a zip of the
MLflow model directory, format ``bytes``), the run's params and metrics, the version's description and tags,
and a lineage (git commit, Python, packages from ``requirements.txt``, ``copied_from`` naming the MLflow
version). The manifest and the ``registered`` event carry MLflow's creation time and the run's user; the tags
``mlflow.*`` keep MLflow's version number, run id, source and who ran the import.

Then the current stages (MLflow keeps no stage history: they are set as of the import, through this
registry's lifecycle, reason ``imported from MLflow``), the aliases and the model's description. MLflow allows
several versions in Production; this registry allows one, so the highest stays and the others are archived,
with a warning in the report.

Run again, it adds only what changed: each registration carries an operation key naming the MLflow version,
versions already imported are recognised without downloading anything, and stages, aliases and descriptions
are compared with the current state before any event is written.

The server is trusted for metadata only (see ``mlflow_source``): artifacts come through its own
proxy unless ``allowed_roots`` names a local directory or S3 prefix holding them, and a location outside
stops the import (``ArtifactLocationRefused``) before anything of it is read. A version
over the size caps, or whose model this registry refuses to register (types that may run code), is skipped
and named in the report's ``skipped``; the other versions are imported.

A version's files are downloaded a chunk at a time into a private temporary directory, deleted once it is
registered or skipped: the model file (or the zip made of the directory, also written a chunk at a time) is
registered from there as a file, never held whole in memory. Only the files the import parses (``MLmodel``,
``requirements.txt``) are read into memory, up to :data:`MAX_PARSED_FILE_BYTES` each.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from prefect_model_registry.registry.core.identity import resolve_actor
from prefect_model_registry.registry.core.transfer import ProgressCallback, Source
from prefect_model_registry.registry.errors import ArtifactTooLarge, RegistryError, UntrustedArtifact
from prefect_model_registry.registry.interop.mlflow_source import MlflowSource
from prefect_model_registry.registry.models import Lineage, ModelState, ModelVersion, VersionInfo
from prefect_model_registry.registry.names import check_model_name
from prefect_model_registry.registry.registry import Registry

#: Largest ``MLmodel`` or ``requirements.txt`` an import reads into memory to parse (bytes); a bigger one skips
#: its version (``ArtifactTooLarge``).
MAX_PARSED_FILE_BYTES = 4 * 1024**2
#: Bytes copied at a time into the zip of a model directory.
ZIP_CHUNK = 1024**2

#: MLflow stage -> stage here.
STAGES = {"None": "none", "Staging": "staging", "Production": "production", "Archived": "archived"}
#: The lifecycle steps from one stage to another (production can only be left through archived).
PATHS: dict[tuple[str, str], list[str]] = {
    ("none", "staging"): ["staging"],
    ("none", "production"): ["staging", "production"],
    ("none", "archived"): ["archived"],
    ("staging", "production"): ["production"],
    ("staging", "archived"): ["archived"],
    ("staging", "none"): ["none"],
    ("archived", "staging"): ["staging"],
    ("archived", "production"): ["staging", "production"],
    ("archived", "none"): ["none"],
    ("production", "archived"): ["archived"],
    ("production", "staging"): ["archived", "staging"],
    ("production", "none"): ["archived", "none"],
}


@dataclass
class ModelImport:
    """What the import did for one model."""

    registered: dict[str, int] = field(default_factory=dict)  # MLflow version -> version here (new)
    existing: dict[str, int] = field(default_factory=dict)  # imported by an earlier run
    changes: list[str] = field(default_factory=list)  # stage, alias and description events written
    warnings: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # MLflow version -> why it was not imported


def _ts(ms: Any) -> datetime | None:
    return datetime.fromtimestamp(int(ms) / 1000, UTC) if ms else None


def _pairs(items: Iterable[dict[str, Any]] | None) -> dict[str, str]:
    return {str(t["key"]): str(t.get("value", "")) for t in items or []}


def _packages(requirements: bytes | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (requirements or b"").decode("utf-8", "replace").splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and name and not name.startswith("#"):
            found[name.strip()] = version.strip()
    return found


def read_parsed(files: dict[str, Path], name: str) -> bytes | None:
    """The bytes of the downloaded file ``name`` the import parses (None when the version has none).

    Raises:
        ArtifactTooLarge: larger than :data:`MAX_PARSED_FILE_BYTES`.

    """
    path = files.get(name)
    if path is None:
        return None
    with open(path, "rb") as fh:
        data = fh.read(MAX_PARSED_FILE_BYTES + 1)
    if len(data) > MAX_PARSED_FILE_BYTES:
        raise ArtifactTooLarge(f"its {name} is larger than {MAX_PARSED_FILE_BYTES} bytes: not parsed")
    return data


def flavors_of(mlmodel: bytes | None) -> dict[str, Any]:
    """The ``flavors`` of an MLflow model directory's ``MLmodel`` file (empty when there is none)."""
    meta = yaml.safe_load(mlmodel or b"{}")
    flavors = meta.get("flavors") if isinstance(meta, dict) else None
    return flavors if isinstance(flavors, dict) else {}


def model_file(names: Collection[str], flavors: dict[str, Any]) -> tuple[str | None, str, str]:
    """What to register from an MLflow model directory of files ``names``: ``(file, format, flavors)``.

    ``file`` is the one file to register (an ``mlflow.sklearn`` model: skops or pickle); None means the whole
    directory as a zip (:func:`zip_files`), format ``bytes``.
    """
    sk = flavors.get("sklearn")
    pickled = sk.get("pickled_model") if isinstance(sk, dict) else None
    if isinstance(sk, dict) and isinstance(pickled, str) and pickled in names:
        fmt = "skops" if sk.get("serialization_format") == "skops" else "pickle"
        return pickled, fmt, ",".join(sorted(flavors))
    return None, "bytes", ",".join(sorted(flavors))


def zip_files(files: dict[str, Path], out: Path) -> None:
    """A zip of ``files`` (relative path -> file) at the new private file ``out``, each copied a chunk at a time.

    The same files make the same bytes: sorted, stored uncompressed, with a fixed date (the zip the import made
    in memory before, byte for byte).
    """
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w+b") as fh, zipfile.ZipFile(fh, "w") as archive:
        for rel in sorted(files):
            info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
            info.file_size = files[rel].stat().st_size  # decides ZIP64 up front, as writestr does
            with open(files[rel], "rb") as src, archive.open(info, "w") as dest:
                shutil.copyfileobj(src, dest, ZIP_CHUNK)


def import_mlflow(
    reg: Registry,
    tracking_uri: str,
    *,
    models: Iterable[str] | None = None,
    actor: str | None = None,
    say: Callable[[str], None] = lambda _line: None,
    allowed_roots: Iterable[str | os.PathLike[str]] = (),
    max_version_bytes: int | None = None,
    max_version_files: int | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, ModelImport]:
    """Import the registered models of the MLflow server at ``tracking_uri`` (all, or ``models``).

    Args:
        reg: the registry to import into.
        tracking_uri: ``http(s)://[user:password@]host[:port]``; credentials in it become basic auth and are
            never shown or recorded.
        models: only these registered models (default: all).
        actor: who runs the import (recorded in the ``mlflow.imported_by`` tag and the stage events).
        say: told a line per version imported or skipped.
        allowed_roots: local directories and ``s3://bucket[/prefix]`` roots the server may name as a version's
            download location; by default only its artifact proxy (``mlflow-artifacts:/``) is read.
        max_version_bytes: a bigger version is skipped (default ``PMR_MLFLOW_MAX_VERSION_BYTES`` or 2 GiB).
        max_version_files: a version with more files and directories is skipped (default
            ``PMR_MLFLOW_MAX_VERSION_FILES`` or 10,000).
        progress: called as ``progress(stage, done, total)`` while a version's model file is hashed and stored.

    Raises:
        InvalidMetadata: a bad tracking URI, allowed root or cap, or an MLflow model name that is not valid here.
        StoreUnavailable: the MLflow server cannot be reached, or redirected to another origin.
        ArtifactLocationRefused: the server named artifacts outside its proxy and the allowed roots, or a listing
            path leading out of a version's directory; nothing of them was read.

    """
    source = MlflowSource(
        tracking_uri,
        allowed_roots=allowed_roots,
        max_version_bytes=max_version_bytes,
        max_version_files=max_version_files,
    )
    importer = resolve_actor(actor)
    wanted = sorted(set(models)) if models is not None else [m["name"] for m in source.models()]
    for name in wanted:
        check_model_name(name)  # refuse before writing anything
    return {name: _import_model(reg, source, name, importer, say, progress) for name in wanted}


def _imported(reg: Registry, name: str, origin: str) -> dict[str, int]:
    """MLflow version -> version here, for versions an earlier run imported from ``origin``."""
    if not reg.store.exists(reg.manifest_key(name, 1)):
        return {}
    found = {}
    for mv in reg.search(name, include_deleted=True):
        ref = mv.lineage.copied_from or ""
        if ref.startswith(f"{origin}#models:/{name}/"):
            found[ref.rsplit("/", 1)[1]] = mv.version
    return found


def _import_model(
    reg: Registry,
    source: MlflowSource,
    name: str,
    importer: str,
    say: Callable[[str], None],
    progress: ProgressCallback | None = None,
) -> ModelImport:
    out = ModelImport()
    origin = f"mlflow+{source.uri}"
    meta = source.model(name)
    done = _imported(reg, name, origin)
    mapping: dict[str, int] = {}
    listed = source.versions(name)
    for mlv in listed:
        number = str(mlv["version"])
        if mlv.get("status", "READY") != "READY":
            out.warnings.append(f"MLflow v{number} is {mlv.get('status')}: skipped")
            continue
        if number in done:
            mapping[number] = out.existing[number] = done[number]
            continue
        try:
            mv = _register(reg, source, name, mlv, origin, importer, progress)
        except (ArtifactTooLarge, UntrustedArtifact) as exc:  # this version only: nothing of it was written
            out.skipped[number] = f"{type(exc).__name__}: {exc}"
            say(f"{name}: MLflow v{number} skipped: {exc}")
            continue
        mapping[number] = out.registered[number] = mv.version
        say(f"{name}: MLflow v{number} -> {mv.uri}")
    _apply_stages(reg, listed, name, mapping, importer, out)
    state = reg.state(name) if mapping else None
    for alias in meta.get("aliases", []):
        target = mapping.get(str(alias["version"]))
        if target is None or state is None:
            out.warnings.append(f"alias {alias['alias']!r} names MLflow v{alias['version']}, not imported")
        elif state.aliases.get(alias["alias"]) != target:
            reg.set_alias(name, alias["alias"], target, actor=importer, reason="imported from MLflow")
            out.changes.append(f"alias {alias['alias']} -> v{target}")
    description = meta.get("description") or ""
    if state is not None and description and state.model_description != description:
        reg.describe(name, None, description, actor=importer)
        out.changes.append("model description")
    if state is not None:
        _edits(reg, listed, name, mapping, state, importer, out)
    return out


@dataclass(frozen=True)
class Downloaded:
    """A version's model directory, downloaded: the file to register and what the import parsed."""

    model: Path  # the model file, or a zip of the directory
    fmt: str
    flavors: str  # the flavor names, comma-separated
    flavor_meta: dict[str, Any]  # MLmodel's flavors
    requirements: bytes | None  # requirements.txt


@contextlib.contextmanager
def _downloaded(source: MlflowSource, uri: str) -> Iterator[Downloaded]:
    """The files at ``uri`` in a private temporary directory (mode 0700), deleted however the block ends."""
    with tempfile.TemporaryDirectory(prefix="pmr-mlflow-") as spool:
        files = source.download(uri, Path(spool))
        flavor_meta = flavors_of(read_parsed(files, "MLmodel"))  # MLmodel is parsed once
        chosen, fmt, flavors = model_file(files, flavor_meta)
        if chosen is None:
            model = Path(spool) / "model.zip"  # the spool's own files are named by numbers only
            zip_files(files, model)
        else:
            model = files[chosen]
        yield Downloaded(model, fmt, flavors, flavor_meta, read_parsed(files, "requirements.txt"))


def _register(
    reg: Registry,
    source: MlflowSource,
    name: str,
    mlv: dict[str, Any],
    origin: str,
    importer: str,
    progress: ProgressCallback | None = None,
) -> ModelVersion:
    number = str(mlv["version"])
    run = source.run(mlv["run_id"]) if mlv.get("run_id") else {}
    data, info = run.get("data", {}), run.get("info", {})
    run_tags = _pairs(data.get("tags"))
    with _downloaded(source, source.download_uri(name, number)) as got:
        pyfunc = got.flavor_meta.get("python_function")
        python = pyfunc.get("python_version") if isinstance(pyfunc, dict) else None
        lineage = Lineage(
            code_version=run_tags.get("mlflow.source.git.commit") or "unknown (imported from MLflow)",
            python_version=str(python) if python else "unknown (imported from MLflow)",
            packages=_packages(got.requirements) or {"mlflow": "unknown"},
            copied_from=f"{origin}#models:/{name}/{number}",
        )
        tags = _pairs(mlv.get("tags")) | {
            "mlflow.version": number,
            "mlflow.run_id": str(mlv.get("run_id") or ""),
            "mlflow.source": str(mlv.get("source") or ""),
            "mlflow.flavors": got.flavors,
            "mlflow.imported_by": importer,
        }
        version_info = VersionInfo(
            metrics={m["key"]: float(m["value"]) for m in data.get("metrics", [])},
            params={p["key"]: p.get("value", "") for p in data.get("params", [])},
            tags=tags,
            description=mlv.get("description") or "",
            lineage=lineage,
        )
        return reg.register(
            name,
            Source.of_path(got.model, progress),  # hashed, then sent, a chunk at a time
            version_info,
            fmt=got.fmt,
            actor=mlv.get("user_id") or info.get("user_id") or "mlflow",
            operation_key=lineage.copied_from,
            created_at=_ts(mlv.get("creation_timestamp")),
            snapshot_dataset=False,
            progress=progress,
        )


def _apply_stages(
    reg: Registry, listed: list[dict[str, Any]], name: str, mapping: dict[str, int], importer: str, out: ModelImport
) -> None:
    """Bring each imported version to its MLflow stage (production last, and only one)."""
    wanted: dict[int, str] = {}
    for mlv in listed:
        ours = mapping.get(str(mlv["version"]))
        if ours is not None:
            wanted[ours] = STAGES.get(str(mlv.get("current_stage") or "None"), "none")
    production = sorted(v for v, s in wanted.items() if s == "production")
    for extra in production[:-1]:
        wanted[extra] = "archived"
        out.warnings.append(f"v{extra} is also in Production in MLflow: archived here (one production version)")
    for version in sorted(wanted, key=lambda v: (wanted[v] == "production", v)):
        current = reg.state(name).stage_of(version)
        for step in PATHS.get((current, wanted[version]), []):
            try:
                reg.promote(name, version, step, actor=importer, reason="imported from MLflow")
            except RegistryError as exc:  # e.g. this registry's approval policy asks for a review first
                out.warnings.append(f"v{version} not moved to {step}: {exc}")
                break
            out.changes.append(f"v{version} -> {step}")


def _edits(
    reg: Registry,
    listed: list[dict[str, Any]],
    name: str,
    mapping: dict[str, int],
    state: ModelState,
    importer: str,
    out: ModelImport,
) -> None:
    """Descriptions and tags changed in MLflow since an earlier import, as edit events."""
    for mlv in listed:
        ours = mapping.get(str(mlv["version"]))
        if ours is None or str(mlv["version"]) in out.registered:
            continue
        current = reg.view(name, ours, state)
        description = mlv.get("description") or ""
        if description != current.description:
            reg.describe(name, ours, description, actor=importer)
            out.changes.append(f"v{ours} description")
        tags = _pairs(mlv.get("tags"))
        changed = {k: v for k, v in tags.items() if current.tags.get(k) != v}
        if changed:
            reg.tag(name, ours, changed, actor=importer)
            out.changes.append(f"v{ours} tags {sorted(changed)}")
