"""Capturing lineage: code version, environment and dataset fingerprints."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

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


def code_version(cwd: Path | None = None) -> tuple[str | None, bool | None]:
    """The git commit of ``cwd`` and whether the work tree has uncommitted changes (``None`` outside git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(dirty)


def environment() -> dict[str, Any]:
    """Python version and the versions of :data:`TRACKED_PACKAGES` that are installed."""
    packages = {}
    for dist in TRACKED_PACKAGES:
        try:
            packages[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return {"python_version": platform.python_version(), "packages": packages}


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
