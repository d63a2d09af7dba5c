"""Validation gates for the model lifecycle: data quality, drift, metric thresholds, champion/challenger.

Every gate is a plain function returning a ``GateReport`` (no Prefect here).
Public names are re-exported lazily: ``import validations`` stays cheap and never imports Great
Expectations (about 3 s), which only loads when a data-quality or drift check actually runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect_model_registry.validations.champion import compare
    from prefect_model_registry.validations.data_quality import load_suite, suite_path, validate_dataframe
    from prefect_model_registry.validations.drift import drift_report
    from prefect_model_registry.validations.errors import (
        EmptyDataError,
        MetricComputationError,
        MissingColumnsError,
        SuiteError,
        ThresholdConfigError,
        UnknownMetricError,
        ValidationsError,
    )
    from prefect_model_registry.validations.metrics import KNOWN_METRICS, evaluate
    from prefect_model_registry.validations.report import CheckResult, GateReport, combine
    from prefect_model_registry.validations.thresholds import (
        ThresholdConfig,
        check_thresholds,
        load_thresholds,
        thresholds_path,
    )

_EXPORTS: dict[str, str] = {
    "CheckResult": "report",
    "GateReport": "report",
    "combine": "report",
    "ValidationsError": "errors",
    "EmptyDataError": "errors",
    "MissingColumnsError": "errors",
    "SuiteError": "errors",
    "ThresholdConfigError": "errors",
    "UnknownMetricError": "errors",
    "MetricComputationError": "errors",
    "load_suite": "data_quality",
    "suite_path": "data_quality",
    "validate_dataframe": "data_quality",
    "drift_report": "drift",
    "KNOWN_METRICS": "metrics",
    "evaluate": "metrics",
    "ThresholdConfig": "thresholds",
    "load_thresholds": "thresholds",
    "thresholds_path": "thresholds",
    "check_thresholds": "thresholds",
    "compare": "champion",
}

__all__ = [
    "KNOWN_METRICS",
    "CheckResult",
    "EmptyDataError",
    "GateReport",
    "MetricComputationError",
    "MissingColumnsError",
    "SuiteError",
    "ThresholdConfig",
    "ThresholdConfigError",
    "UnknownMetricError",
    "ValidationsError",
    "check_thresholds",
    "combine",
    "compare",
    "drift_report",
    "evaluate",
    "load_suite",
    "load_thresholds",
    "suite_path",
    "thresholds_path",
    "validate_dataframe",
]


def __getattr__(name: str) -> Any:
    """Import the submodule defining ``name`` on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # cache: next access skips __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if __name__ != "prefect_model_registry.validations":
    # Run from the checkout, the bare folder name would load a second copy of every class (two `Registry`
    # types, two error hierarchies that do not catch each other's errors): only the installed name is allowed.
    raise ImportError(f"import prefect_model_registry.validations, not {__name__!r}")
