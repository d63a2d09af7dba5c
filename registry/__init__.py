"""A model registry on object storage: versions, lineage, stages, aliases and a tamper-evident audit log.

No Prefect import and no database: the bucket (or a local directory) is the registry.

Example:
    >>> from registry import Registry
    >>> reg = Registry.open("s3://models/prod")        # or a directory; default: PMR_REGISTRY_URI
    >>> mv = reg.register_model("churn", fitted_estimator, VersionInfo(metrics={"auc": 0.91}))
    >>> reg.promote("churn", mv.version, "staging", reason="passed gates")
    >>> model = reg.load("models:/churn@production")

"""

from __future__ import annotations

from registry.errors import *  # noqa: F403 - the error hierarchy is part of the public API
from registry.errors import RegistryError
from registry.models import Event, Lineage, ModelState, ModelVersion, VersionInfo
from registry.names import STAGES, ModelRef, parse_model_uri
from registry.policy import ApprovalRules
from registry.registry import Registry, default_actor


def load_model(uri: str, *, registry: str | None = None) -> object:
    """Load a model by URI from the registry at ``registry`` (default ``PMR_REGISTRY_URI``)."""
    return Registry.open(registry).load(uri)


__all__ = [
    "STAGES",
    "ApprovalRules",
    "Event",
    "Lineage",
    "ModelRef",
    "ModelState",
    "ModelVersion",
    "Registry",
    "RegistryError",
    "VersionInfo",
    "default_actor",
    "load_model",
    "parse_model_uri",
]
