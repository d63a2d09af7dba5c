"""A model registry on object storage: versions, lineage, stages, aliases and a tamper-evident audit log.

No Prefect import and no database: the bucket (or a local directory) is the registry.

Example:
    >>> from prefect_model_registry.registry import Registry
    >>> reg = Registry.open("s3://models/prod")        # or a directory; default: PMR_REGISTRY_URI
    >>> mv = reg.register_model("churn", fitted_estimator, VersionInfo(metrics={"auc": 0.91}))
    >>> reg.promote("churn", mv.version, "staging", reason="passed gates")
    >>> model = reg.load("models:/churn@production")

"""

from __future__ import annotations

from prefect_model_registry.registry import errors
from prefect_model_registry.registry.core.identity import default_actor
from prefect_model_registry.registry.core.policy import ApprovalRules
from prefect_model_registry.registry.core.waiting import GateVerdict, PausedRun, WaitingVersion
from prefect_model_registry.registry.errors import *  # noqa: F403 - the error hierarchy is part of the public API
from prefect_model_registry.registry.events import EventType
from prefect_model_registry.registry.models import Event, Lineage, ModelState, ModelVersion, VersionInfo
from prefect_model_registry.registry.names import STAGES, ModelRef, parse_model_uri
from prefect_model_registry.registry.registry import Registry


def load_model(uri: str, *, registry: str | None = None) -> object:
    """Load a model by URI from the registry at ``registry`` (default ``PMR_REGISTRY_URI``)."""
    return Registry.open(registry).load(uri)


__all__ = [
    "STAGES",
    "ApprovalRules",
    "Event",
    "EventType",
    "GateVerdict",
    "Lineage",
    "ModelRef",
    "ModelState",
    "ModelVersion",
    "PausedRun",
    "Registry",
    "VersionInfo",
    "WaitingVersion",
    "default_actor",
    "load_model",
    "parse_model_uri",
    *errors.__all__,  # the error hierarchy, listed in errors.py
]

if __name__ != "prefect_model_registry.registry":
    # Run from the checkout, the bare folder name would load a second copy of every class (two `Registry`
    # types, two error hierarchies that do not catch each other's errors): only the installed name is allowed.
    raise ImportError(f"import prefect_model_registry.registry, not {__name__!r}")
