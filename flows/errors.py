"""Why a pipeline run stopped. Each subclasses the matching built-in."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of the pipeline's deliberate stops."""


class DatasetError(PipelineError, ValueError):
    """The dataset cannot be read, or lacks the target column."""


class EstimatorError(PipelineError, ValueError):
    """The estimator class path or hyperparameters are not usable."""


class TrainerError(EstimatorError):
    """A trainer function is not allowed, cannot be imported, or did not return a usable estimator."""


class ConfigError(PipelineError, ValueError):
    """A retraining configuration is invalid; the message names the field."""


class GateFailed(PipelineError, RuntimeError):
    """A data-quality or metric gate failed; the report says which checks."""

    def __init__(self, gate: str, message: str, version: int | None = None) -> None:
        super().__init__(message)
        self.gate = gate
        self.version = version


class ApprovalRejected(PipelineError, RuntimeError):
    """A reviewer rejected the version."""


class ApprovalTimedOut(PipelineError, RuntimeError):
    """No decision came before the approval timeout; the version stays staged.

    Not a ``TimeoutError``: Prefect takes those for a timeout of the flow itself and drops the message.
    """
