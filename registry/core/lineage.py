"""Capturing lineage: code version, environment and dataset fingerprints, in one builder for every entry point.

``pmr register``, :meth:`Registry.register_model` and the flows all record the same lineage: every
registration path goes through :func:`complete_lineage`, which fills what the caller left out.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

from prefect_model_registry.registry.errors import DatasetUnavailable
from prefect_model_registry.registry.models import Lineage, canonical_json

#: Distributions whose versions every manifest records.
TRACKED_PACKAGES = (
    "prefect-model-registry",
    "scikit-learn",
    "numpy",
    "scipy",
    "pandas",
    "skops",
    "great-expectations",
    "prefect",
)


#: How long a looked-up code version is reused: a burst of registrations runs git once, not per version.
_CODE_VERSION_TTL_S = 10.0
_code_cache: dict[str, tuple[float, tuple[str | None, bool | None]]] = {}


def code_version(cwd: Path | None = None) -> tuple[str | None, bool | None]:
    """The git commit of ``cwd`` and whether its work tree has changes (``None`` outside git): :func:`git_state`."""
    where = str(cwd or Path.cwd())
    cached = _code_cache.get(where)
    if cached and time.monotonic() - cached[0] < _CODE_VERSION_TTL_S:
        return cached[1]
    found = git_state(Path(where))
    _code_cache[where] = (time.monotonic(), found)
    return found


def git_state(directory: Path) -> tuple[str | None, bool | None]:
    """The commit checked out in the git work tree holding ``directory``, and whether that tree has changes.

    Changes are anything ``git status`` lists: modified, staged, deleted and untracked files (ignored ones are
    not), except Python's byte code (``__pycache__/``, ``*.pyc``), which importing the code itself leaves behind.
    ``(None, None)`` outside a work tree, without git, or when git fails.
    """
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "-z", "--untracked-files=all"],
            cwd=directory,
            capture_output=True,
            text=True,
            errors="replace",  # a file name that is not UTF-8 is still a change
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, any(_is_change(entry) for entry in status.split("\0") if entry)


def _is_change(entry: str) -> bool:
    # ``-z`` entries are "XY path" (a rename's source follows as an entry of its own, also a change).
    path = entry[3:] if entry[2:3] == " " else entry
    return not (entry.startswith("??") and ("__pycache__/" in f"/{path}" or path.endswith((".pyc", ".pyo"))))


def file_sha256(path: Path) -> str | None:
    """Hex SHA-256 of the file at ``path``, or ``None`` when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def config_sha256(config: Any) -> str:
    """Hex SHA-256 of a configuration mapping as canonical JSON (sorted keys, no spaces): its content, not its file."""
    try:
        data = canonical_json(config)
    except ValueError:  # a NaN or infinity somewhere: still a hash of the content, just not canonical JSON's
        data = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    return hashlib.sha256(data).hexdigest()


def trainer_code(spec: str) -> dict[str, Any]:
    """What identifies the code of a trainer ``module:function``, as :class:`Lineage` fields.

    ``trainer`` (the spec), ``trainer_sha256`` (the module's file), ``trainer_distribution`` and
    ``trainer_distribution_version`` (the installed distribution providing its top-level package, if any), and
    ``trainer_commit`` / ``trainer_dirty`` (:func:`git_state` of the file's directory, not of the current one).
    The module already imported in this process is used; one not yet imported is located without running it
    (a parent package's ``__init__`` may run). What cannot be found stays ``None``.
    """
    module_name = spec.partition(":")[0]
    fields: dict[str, Any] = dict.fromkeys(
        ("trainer_sha256", "trainer_distribution", "trainer_distribution_version", "trainer_commit", "trainer_dirty")
    )
    fields["trainer"] = spec
    path = _module_file(module_name)
    if path is not None:
        fields["trainer_sha256"] = file_sha256(path)
        # A file the repository ignores (an installed copy in a .venv inside the project) is none of its code.
        if not _ignored_by_git(path):
            fields["trainer_commit"], fields["trainer_dirty"] = git_state(path.parent)
    top = module_name.partition(".")[0]
    for dist in sorted(metadata.packages_distributions().get(top, [])):
        try:
            fields["trainer_distribution_version"] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        fields["trainer_distribution"] = dist
        break
    return fields


def _ignored_by_git(path: Path) -> bool:
    try:
        found = subprocess.run(
            ["git", "check-ignore", "-q", "--", path.name], cwd=path.parent, capture_output=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return found.returncode == 0  # 1: not ignored; 128: not in a work tree (git_state says so)


def _module_file(module_name: str) -> Path | None:
    module = sys.modules.get(module_name)
    where = getattr(module, "__file__", None) if module is not None else None
    if where is None:
        try:
            spec = importlib.util.find_spec(module_name)
        except (ImportError, ValueError):
            return None
        where = spec.origin if spec is not None and spec.has_location else None
    return Path(where) if where else None


def environment() -> dict[str, Any]:
    """Python version and the versions of :data:`TRACKED_PACKAGES` that are installed."""
    return {"python_version": platform.python_version(), "packages": dict(_packages())}


@functools.cache
def _packages() -> dict[str, str]:
    # Installed versions do not change under a running process: look them up once.
    packages = {}
    for dist in TRACKED_PACKAGES:
        try:
            packages[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return packages


def fingerprint_bytes(data: bytes) -> str:
    """``sha256:<hex>`` of raw dataset bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fingerprint_frame(frame: Any) -> str:
    """``sha256:<hex>`` of a pandas DataFrame's values, index and column names (row order matters)."""
    import pandas as pd

    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def dataset_location(uri: str) -> Path | tuple[Any, str, str]:
    """Where a dataset URI points: a local :class:`Path`, or ``(boto3 client, bucket, key)`` for ``s3://``.

    Raises:
        DatasetUnavailable: an ``s3://`` URI without bucket and key, or a scheme other than ``file://``/``s3://``.

    """
    if uri.startswith("s3://"):
        import boto3

        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket or not key:
            raise DatasetUnavailable(f"dataset URI {uri!r} names no bucket and key")
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return boto3.session.Session().client("s3", endpoint_url=endpoint), bucket, key
    if "://" in uri and not uri.startswith("file://"):
        raise DatasetUnavailable(f"cannot read dataset {uri}: use a local path, file:// or s3://")
    return Path(uri.removeprefix("file://"))


def read_dataset_bytes(uri: str) -> bytes:
    """The bytes of a dataset at a local path, ``file://`` URI or ``s3://bucket/key``.

    Raises:
        DatasetUnavailable: it cannot be read.

    """
    where = dataset_location(uri)
    if not isinstance(where, Path):
        from botocore.exceptions import BotoCoreError, ClientError

        client, bucket, key = where
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise DatasetUnavailable(f"cannot read dataset {uri}: {exc}") from None
    try:
        return where.read_bytes()
    except OSError as exc:
        raise DatasetUnavailable(f"cannot read dataset {uri}: {exc.strerror or exc}") from None


def complete_lineage(
    lineage: Lineage,
    *,
    dataset_bytes: bytes | None = None,
    dataset_sha256: str | None = None,
    allow_missing_dataset: bool = False,
) -> Lineage:
    """``lineage`` with what the caller left out filled in: code version, Python, packages, dataset fingerprint.

    Args:
        lineage: what the caller knows (flow run, parent version, dataset URI ...); its values are kept.
        dataset_bytes: the training data, when the caller has it in hand (saves reading it again).
        dataset_sha256: the SHA-256 of the training data, when the caller has hashed it (saves reading it again).
        allow_missing_dataset: register even when ``dataset_uri`` cannot be read (a warning is issued and the
            fingerprint stays empty); by default such a registration is refused.

    Raises:
        DatasetUnavailable: ``dataset_uri`` is set, has no fingerprint and cannot be read.

    """
    fields: dict[str, Any] = {}
    if lineage.code_version is None:
        # The directory the registering process runs in; a flow's trainer has its own (``trainer_code``).
        fields["code_version"], fields["code_dirty"] = code_version()
    if lineage.python_version is None or not lineage.packages:
        env = environment()
        fields["python_version"] = lineage.python_version or env["python_version"]
        fields["packages"] = lineage.packages or env["packages"]
    if lineage.dataset_uri and not lineage.dataset_fingerprint:
        try:
            if dataset_sha256 is not None:
                fields["dataset_fingerprint"] = f"sha256:{dataset_sha256}"  # what fingerprint_bytes gives
            else:
                data = dataset_bytes if dataset_bytes is not None else read_dataset_bytes(lineage.dataset_uri)
                fields["dataset_fingerprint"] = fingerprint_bytes(data)
        except DatasetUnavailable as exc:
            if not allow_missing_dataset:
                hint = "register with allow_missing_dataset to record the URI only"
                raise DatasetUnavailable(f"{exc} ({hint})") from None
            warnings.warn(f"{exc}; registering without a dataset fingerprint", stacklevel=3)
    return lineage.model_copy(update=fields) if fields else lineage
