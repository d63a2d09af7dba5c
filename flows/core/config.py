"""One typed configuration for a retraining run: what the flow takes, a deployment holds and a YAML file carries.

Every field has a title and a description, so the Prefect UI's custom run dialog shows a readable form. A bad
configuration is refused with one line naming the field (:class:`prefect_model_registry.flows.errors.ConfigError`), and
:meth:`RetrainConfig.preflight` loads the suite, the thresholds and the trainer before any data is read or any
model trained, so a typo costs seconds, not a training run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from prefect_model_registry.flows.core import trust
from prefect_model_registry.flows.core.approval import ApprovalPolicy
from prefect_model_registry.flows.errors import ConfigError
from prefect_model_registry.validations.policy import GatePolicy


class SplitConfig(BaseModel):
    """How the holdout is drawn (stratified on class labels when every class can be split)."""

    model_config = ConfigDict(extra="forbid")

    test_size: float = Field(default=0.25, gt=0, lt=1, title="Holdout share", description="Share of rows held out.")
    random_state: int = Field(default=42, title="Seed", description="Seed of the split.")


class RetrainConfig(BaseModel):
    """Everything a retraining run needs: data, checks, training code, gates, approval and where to register."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_name: str = Field(title="Model name", description="Registry model name, e.g. churn.")
    dataset_uri: str = Field(title="Training data", description="CSV or Parquet: a local path or s3://bucket/key.")
    target: str = Field(default="target", title="Target column", description="The column to predict.")
    dataset: str = Field(
        default="breast_cancer",
        title="Bundled checks",
        description="Name of the bundled suite and thresholds (validations/suites, validations/thresholds), "
        "used for whichever of suite/thresholds is not set.",
    )
    suite: str | None = Field(
        default=None,
        title="Data-quality suite",
        description="Path to a Great Expectations suite file (YAML/JSON), or a bundled suite name.",
    )
    thresholds: str | None = Field(
        default=None, title="Metric thresholds", description="Path to a thresholds file, or a bundled name."
    )
    trainer: str | None = Field(
        default=None,
        title="Trainer function",
        description="module:function that gets (train frame, target, params) and returns a fitted estimator. "
        "Its module must be listed exactly: in a deployment's run by the worker policy, else by PMR_TRAINER_MODULES.",
    )
    estimator: str = Field(
        default="sklearn.linear_model.LogisticRegression",
        title="Estimator class",
        description="A scikit-learn estimator class (one of sklearn.utils.all_estimators()), used when no "
        "trainer is given.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, title="Parameters", description="Hyperparameters of the estimator (or the trainer)."
    )
    preprocessing: Literal["auto", "none"] = Field(
        default="auto",
        title="Preprocessing",
        description="auto: impute and scale numeric columns, impute and one-hot encode the others "
        "(estimator class only; a trainer does its own).",
    )
    candidates: list[dict[str, Any]] = Field(
        default_factory=list,
        title="Sweep candidates",
        description="Parameter sets merged over params; each is trained as a task and the best on the primary "
        "metric goes through the gates.",
    )
    task_runner: Literal["local", "dask"] = Field(
        default="local",
        title="Sweep runner",
        description="local: threads in the flow's process; dask: prefect-dask's DaskTaskRunner.",
    )
    dask_address: str | None = Field(
        default=None,
        title="Dask scheduler",
        description="tcp://host:8786 of a running Dask scheduler (in a deployment's run, one the worker policy "
        "lists); empty starts a local cluster of 2 workers.",
    )
    split: SplitConfig = Field(default_factory=SplitConfig, title="Holdout split")
    gates: GatePolicy = Field(default_factory=GatePolicy, title="Gate policy")
    secondary_metric: str | None = Field(
        default=None,
        title="Sweep tie-breaker",
        description="The metric that decides between sweep candidates tied on the primary metric (each metric in "
        "its own direction: lower is better for log_loss, rmse, mae); 'none': candidate order decides. Empty: "
        "log_loss when the model has predict_proba, else none.",
    )
    tie_tolerance: float = Field(
        default=1e-9,
        ge=0,
        allow_inf_nan=False,
        title="Sweep tie tolerance",
        description="Sweep candidates whose primary metric is within this of the best are tied (the same "
        "tolerance applies to the tie-breaker).",
    )
    target_stage: Literal["staging", "production"] = Field(
        default="production", title="Take it as far as", description="The last stage a passing version goes to."
    )
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy, title="Approval")
    aliases: list[str] = Field(
        default_factory=lambda: ["champion"],
        title="Aliases",
        description="Moved to the version when it reaches production.",
    )
    snapshot_dataset: bool = Field(
        default=True,
        title="Keep the training data",
        description="Store a copy of the training data in the registry (restorable with pmr dataset; up to "
        "PMR_SNAPSHOT_MAX_BYTES, 100 MiB by default).",
    )
    registry: str | None = Field(
        default=None, title="Registry", description="s3://bucket/prefix or a directory (default PMR_REGISTRY_URI)."
    )
    actor: str | None = Field(
        default=None, title="Actor", description="Who registers (default PMR_ACTOR, else the deployment)."
    )

    @field_validator("model_name", "dataset_uri", "target")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("secondary_metric")
    @classmethod
    def _tie_breaker(cls, value: str | None, info: ValidationInfo) -> str | None:
        from prefect_model_registry.validations.metrics import check_metric_name

        if value is None or value == "none":
            return value
        gates = info.data.get("gates")
        if gates is not None and value == gates.primary_metric:
            raise ValueError(f"{value!r} is the primary metric (gates.primary_metric): it cannot break its ties")
        return check_metric_name(value)

    @property
    def suite_ref(self) -> str:
        """The suite to run: ``suite`` if set, else the bundled one of ``dataset``."""
        return self.suite or self.dataset

    @property
    def thresholds_ref(self) -> str:
        """The thresholds to apply: ``thresholds`` if set, else the bundled ones of ``dataset``."""
        return self.thresholds or self.dataset

    @classmethod
    def parse(cls, data: Any, *, source: str = "config") -> RetrainConfig:
        """Validate a mapping (a YAML document, a deployment's parameter).

        Raises:
            ConfigError: one line naming the first wrong field (and how many more there are).

        """
        if isinstance(data, RetrainConfig):
            return data
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of fields, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(describe_error(exc, source)) from None

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> RetrainConfig:
        """Load a YAML (or JSON) file, with top-level ``overrides`` applied over it.

        Raises:
            ConfigError: unreadable, not YAML, or a wrong field (named).

        """
        return cls.parse(read_config_file(path) | overrides, source=str(path))

    def preflight(self) -> trust.Loaded | None:
        """Check what the run may reach, then load the suite, thresholds and trainer, before any data is read.

        In a deployment's run, every location (data, suite, thresholds, registry), the trainer module and the Dask
        scheduler must be on the worker policy's lists, and the run's reviewers may only narrow the model's
        (:mod:`prefect_model_registry.flows.core.trust`); nothing outside them is read, imported or contacted.

        Returns:
            The worker policy the run is held to, or ``None`` for a flow called in a person's own process.

        Raises:
            ConfigError: the field whose value is not allowed, or whose file or function is unusable, with why.

        """
        from prefect_model_registry.flows.core import training
        from prefect_model_registry.validations import data_quality, thresholds

        loaded = trust.load() if trust.restricted() else None
        if loaded is not None:
            self.check_reach(loaded)
        checks: list[tuple[str, Any]] = [
            ("suite", lambda: data_quality.load_suite_ref(self.suite_ref)),
            ("thresholds", lambda: thresholds.load_thresholds(self.thresholds_ref)),
        ]
        if self.trainer:
            modules, where = self.trainer_modules(loaded)
            checks.append(("trainer", lambda: training.load_trainer(self.trainer or "", modules, where)))
        else:
            checks.append(("estimator", lambda: training.resolve_estimator(self.estimator)))
        for field, check in checks:
            try:
                check()
            except Exception as exc:  # each loader raises its own typed error; the field is what matters here
                raise ConfigError(f"config field {field!r}: {exc}") from None
        return loaded

    def check_reach(self, loaded: trust.Loaded) -> None:
        """Refuse any location or scheduler outside the worker policy ``loaded`` (the trainer: :meth:`preflight`).

        Raises:
            trust.NotAllowed: the first field outside its list, naming where the list lives.

        """
        locations = {"dataset_uri": self.dataset_uri, "registry": self.registry}
        for field, ref in (("suite", self.suite_ref), ("thresholds", self.thresholds_ref)):
            if not trust.is_bundled_name(ref):
                locations[field] = ref
        trust.check_locations(loaded, locations)
        if self.task_runner == "dask" and self.candidates and self.dask_address:
            trust.check_dask_address(self.dask_address, loaded)

    def trainer_modules(self, loaded: trust.Loaded | None) -> tuple[tuple[str, ...], str]:
        """The modules a trainer may come from in this run, and where that list lives."""
        from prefect_model_registry.flows.core import training

        if loaded is not None:
            return tuple(loaded.policy.trainer_modules), f"'trainer_modules' in {loaded.where}"
        return training.allowed_trainer_modules(), training.TRAINER_MODULES_ENV


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML/JSON config file.

    Raises:
        ConfigError: unreadable, not YAML, or not a mapping.

    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path}: expected a mapping of fields, got {type(data).__name__}")
    return data


def describe_error(exc: ValidationError, source: str = "config") -> str:
    """One line for a validation error: the first wrong field, what is wrong, and how many more."""
    errors = exc.errors()
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown field (check the spelling)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{source}: field {field!r}: {message}{more}"
