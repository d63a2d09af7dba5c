"""The team's nightly retraining: its own flow around the installed package's retraining flow.

Before the package had one import namespace, its top-level ``flows`` package and this project's collided: the
import below found this folder and failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prefect import flow

from prefect_model_registry.flows.pipeline import retrain
from registry import TEAM_ACTOR  # the team's own `registry` package, not the model registry


@flow(name="team-nightly")
def nightly(model_name: str) -> dict[str, Any]:
    """Retrain ``model_name`` with the team's config (``retrain.yaml``, relative to the project directory)."""
    config = yaml.safe_load(Path("retrain.yaml").read_text(encoding="utf-8"))
    return retrain(config | {"model_name": model_name, "actor": TEAM_ACTOR})
