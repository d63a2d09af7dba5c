"""A separate virtual environment holding MLflow, for benchmarks (and tests) that run it beside this registry.

MLflow is not a dependency of this package: its pins (sqlalchemy, fastapi, pandas…) need not agree with
Prefect's, so it lives in ``.venv-mlflow`` at the repository root, built once on first use.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: The MLflow release the benchmark is pinned to (later ones may not install here).
MLFLOW_VERSION = "3.17.2"
ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-mlflow"


def mlflow_python(venv: Path = VENV) -> Path:
    """The interpreter of a virtual environment with MLflow, creating it (a minute or two) when missing."""
    python = venv / "bin" / "python"
    stamp = venv / f".mlflow-{MLFLOW_VERSION}"
    if stamp.exists() and python.exists():
        return python
    print(f"creating {venv.name} with mlflow=={MLFLOW_VERSION} (once)...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"mlflow=={MLFLOW_VERSION}", "boto3"],
        check=True,
    )
    stamp.touch()
    return python


if __name__ == "__main__":
    print(mlflow_python())
