"""Typed errors raised by the validations package.

Every error derives from :class:`ValidationsError` so callers (flows, registry) can catch the whole family,
and also from the matching builtin (``ValueError``/``KeyError``) so generic handlers keep working.
"""

from __future__ import annotations

from collections.abc import Iterable


class ValidationsError(Exception):
    """Base class of every error raised by :mod:`validations`."""


class EmptyDataError(ValidationsError, ValueError):
    """A DataFrame (or feature matrix) to validate or score has no rows."""


class MissingColumnsError(ValidationsError, KeyError):
    """Columns named by the caller are absent from a DataFrame.

    Args:
        columns: The missing column names.
        where: Short description of the DataFrame that lacks them (e.g. ``"batch"``).

    """

    def __init__(self, columns: Iterable[str], where: str = "DataFrame") -> None:
        self.columns: tuple[str, ...] = tuple(columns)
        self.where = where
        super().__init__(self.columns)

    def __str__(self) -> str:
        # KeyError.__str__ repr-quotes its argument; give a readable sentence instead.
        names = ", ".join(repr(c) for c in self.columns)
        return f"{self.where} is missing {len(self.columns)} column(s): {names}"


class SuiteError(ValidationsError, ValueError):
    """A suite file is unreadable, not valid YAML/JSON, or holds an unknown or malformed expectation."""


class ThresholdConfigError(ValidationsError, ValueError):
    """A metric threshold config is unreadable, does not parse, or has an invalid rule."""


class UnknownMetricError(ValidationsError, ValueError):
    """A metric name is not one of :data:`prefect_model_registry.validations.metrics.KNOWN_METRICS`."""


class MetricComputationError(ValidationsError, ValueError):
    """A metric cannot be computed for this model (e.g. ``log_loss`` without ``predict_proba``)."""


class SweepConfigError(ValidationsError, ValueError):
    """A sweep's tie-breaking settings cannot work: the secondary metric is the primary one, or never computed."""
