"""Prefect tasks: thin wrappers that give the plain steps retries, names and a place in the UI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import deployment, flow_run

from prefect_model_registry.flows.core import publish, training, trust
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.errors import PipelineError
from prefect_model_registry.registry import Lineage, ModelVersion, Registry, VersionInfo
from prefect_model_registry.registry.core.lineage import complete_lineage, config_sha256, file_sha256, trainer_code
from prefect_model_registry.registry.errors import (
    AliasNotFound,
    ConcurrencyError,
    ModelNotFound,
    RegistryError,
    StoreError,
)
from prefect_model_registry.registry.settings import settings
from prefect_model_registry.validations import champion, data_quality, drift, metrics, policy, thresholds
from prefect_model_registry.validations.errors import MissingColumnsError, ValidationsError
from prefect_model_registry.validations.policy import GatePolicy
from prefect_model_registry.validations.report import GateReport


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """A task's ``retry_condition_fn``: retry a store or network failure, never a refusal of bad input.

    A typed refusal (unreadable data, a missing model, a file that is not the one hashed...) fails the same way
    every time: retrying it only delays the reason by the retry delays. A store error or a lost race may pass.
    """
    try:
        state.result()
    except (StoreError, ConcurrencyError):
        return True
    except (PipelineError, RegistryError, ValidationsError):
        return False
    except Exception:  # anything else (a timeout, a dropped connection): worth another try
        return True
    return True


def run_actor(actor: str | None = None) -> str:
    """Who a flow acts as: the ``actor`` parameter, ``PMR_ACTOR``, else the flow and its deployment."""
    if actor:
        return actor
    if env_actor := settings().actor:
        return env_actor
    where = deployment.name or flow_run.flow_name or "flow"
    return f"prefect:{where}"


def run_registrant(actor: str | None = None) -> tuple[str, str]:
    """Who registers in a flow, and how that is known: ``(name, "prefect created_by …")`` or ``(name, "claimed")``.

    The run's creator as the Prefect server records it (``FlowRun.created_by``: Prefect Cloud fills it, open-source
    Prefect usually does not), else the claimed name of :func:`run_actor`, which whoever starts the run chooses.
    """
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    creator = getattr(ctx.flow_run, "created_by", None) if ctx is not None and ctx.flow_run is not None else None
    shown = getattr(creator, "display_value", None)
    if creator is not None and isinstance(shown, str) and shown.strip():
        return shown, " ".join(["prefect created_by", str(creator.type or "unknown"), str(creator.id or "")]).strip()
    return run_actor(actor), "claimed"


def registration_key(name: str, info: VersionInfo, actor: str) -> str:
    """The operation key of this run's registration of ``name``: the run id, the registrant and the request.

    The run id alone (shown in the UI) let anyone register another model under the run's key first, and the run
    took that version as its own. The key now also names a digest of the registrant's identity and of the request
    fingerprint (metrics, params, tags, description, dataset fingerprint: what a retry of this run repeats
    exactly, whatever bytes skops writes). A caller with other metadata addresses another key and cannot touch
    the run's; one who takes the run's key as another actor, or with other metadata, gets an
    ``IdempotencyConflict`` (the registry binds a key to its caller), so the run fails
    rather than adopt that version. Only someone who reproduces the run's exact metrics and dataset, and claims
    its registrant's name, could still register first: self-declared names are not authentication.
    """
    from prefect_model_registry.registry.core.idempotency import request_fingerprint
    from prefect_model_registry.registry.core.identity import identity_key
    from prefect_model_registry.registry.models import canonical_json, sha256

    bound = canonical_json({"registrant": identity_key(actor), "request": request_fingerprint(name, "skops", info)})
    return f"{flow_run.id or 'local'}:{name}:register:{sha256(bound)[:32]}"


def lineage_for(dataset: training.Dataset, parent: int | None, config: RetrainConfig | None = None) -> Lineage:
    """Lineage of a version trained in this flow run (completed like every registration's).

    With the run's ``config``: the trainer's code (:func:`trainer_code`: file hash, distribution, its own git
    repository's commit and dirty flag), the suite and thresholds it named with their files' SHA-256, and the
    SHA-256 of the whole configuration.
    """
    code: dict[str, Any] = {}
    if config is not None:
        code = trainer_code(config.trainer) if config.trainer else {}
        for field, ref, locate in (
            ("suite", config.suite_ref, data_quality.suite_path),
            ("thresholds", config.thresholds_ref, thresholds.thresholds_path),
        ):
            # The file the run's loaders read: a bundled name resolves as they resolve it.
            path = locate(ref) if trust.is_bundled_name(ref) else Path(ref)
            code |= {field: ref, f"{field}_sha256": file_sha256(path)}
        code["config_sha256"] = config_sha256(config.model_dump(mode="json"))
    return complete_lineage(
        Lineage(
            dataset_uri=dataset.uri,
            dataset_fingerprint=dataset.fingerprint,
            flow_name=flow_run.flow_name,
            flow_run_id=flow_run.id,
            deployment=deployment.name,
            parent_version=parent,
            **code,
        )
    )


@task(retries=2, retry_delay_seconds=[2, 5], retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE)
def load_dataset(uri: str) -> training.Dataset:
    """Read the training data (CSV or Parquet, local or s3://)."""
    return training.read_dataset(uri)


@task(cache_policy=NO_CACHE)
def check_data_quality(dataset: training.Dataset, suite: str) -> GateReport:
    """Run the dataset's Great Expectations suite (a fresh GX context each time)."""
    return data_quality.validate_dataframe(dataset.frame, suite, dataset=dataset.uri)  # the data, not the suite


@task(cache_policy=NO_CACHE)
def check_drift(
    dataset: training.Dataset,
    registry: str | None,
    champion: ModelVersion | None,
    roots: list[str] | None = None,
) -> GateReport | None:
    """Compare the batch with the production version's training data; say why when that cannot be done.

    The production version's stored drift profile is used first: it holds whatever its file holds today (a
    ``latest.csv`` overwritten every night still gets a drift report). Older versions have no profile: their
    file is read, and used only if its fingerprint still matches the one the version recorded, and in a
    deployment's run (``roots`` given) only inside the worker policy's roots.
    """
    if champion is None:
        return None  # a first model: nothing to drift from
    try:
        stored = Registry.open(registry).reports(champion.name, champion.version).get("drift_reference")
        if stored:
            return drift.drift_report_from_profile(stored["summary"], dataset.frame)
        uri, recorded = champion.lineage.dataset_uri, champion.lineage.dataset_fingerprint
        if not uri:
            return drift.not_checked(f"v{champion.version} records no training data and no drift profile")
        if roots is not None and not trust.within(uri, roots):
            # The location is stored text: in a deployment's run it is read only inside the worker's roots.
            return drift.not_checked(f"v{champion.version}'s training data {uri} is outside the worker's roots")
        try:
            reference = training.read_dataset(uri)
        except training.DatasetError as exc:
            return drift.not_checked(f"v{champion.version}'s training data cannot be read ({exc}); no profile stored")
        if recorded and reference.fingerprint != recorded:
            return drift.not_checked(
                f"{uri} has changed since v{champion.version} was trained on it, and that version stored no profile"
            )
        return drift.drift_report(reference.frame, dataset.frame)
    except (MissingColumnsError, ValueError) as exc:
        return drift.not_checked(f"the batch cannot be compared with v{champion.version}'s data: {exc}")


@task(cache_policy=NO_CACHE)
def split_dataset(dataset: training.Dataset, target: str, test_size: float, random_state: int) -> training.Split:
    """Draw the holdout every candidate and the champion are scored on."""
    return training.split(dataset.frame, target, test_size=test_size, random_state=random_state)


@task(cache_policy=NO_CACHE)
def train_candidate(
    data: training.Split, config: RetrainConfig, params: dict[str, Any], trainer_modules: tuple[str, ...] = ()
) -> tuple[Any, dict[str, float]]:
    """Fit one candidate and score it on the holdout.

    The candidate is the user's trainer (its module in ``trainer_modules``, the list the flow resolved), or
    the estimator class behind the default preprocessing.
    """
    model = training.train(
        data,
        config.target,
        params,
        trainer=config.trainer,
        estimator=config.estimator,
        preprocessing=config.preprocessing,
        trainer_modules=trainer_modules,
    )
    return model, metrics.evaluate(model, data.X_test, data.y_test)


@task(retries=2, retry_delay_seconds=[2, 5], retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE)
def current_champion(registry: str | None, name: str) -> tuple[ModelVersion | None, Any]:
    """The production version of ``name`` and the loaded model (hash-verified), or ``(None, None)``."""
    reg = Registry.open(registry)
    try:
        mv = reg.resolve(f"models:/{name}@production")
    except (ModelNotFound, AliasNotFound):
        return None, None
    return mv, reg.load(mv.uri)


@task(cache_policy=NO_CACHE)
def metric_gates(
    candidate: Any,
    champion_model: Any,
    data: training.Split,
    candidate_metrics: dict[str, float],
    thresholds_ref: str,
    gates: GatePolicy,
) -> tuple[GateReport, GateReport, GateReport]:
    """The metric gates: defined metrics, thresholds, and champion/challenger on the same holdout.

    Thresholds are absolute, and relative to the champion's metrics on that holdout.
    """
    comparison = champion.compare(
        candidate,
        champion_model,
        data.X_test,
        data.y_test,
        primary=gates.primary_metric,
        min_improvement=gates.min_improvement,
    )
    config = thresholds.load_thresholds(thresholds_ref)
    champion_metrics = comparison.summary.get("champion") or None
    checked = thresholds.check_thresholds(candidate_metrics, config, champion_metrics=champion_metrics)
    return policy.metrics_report(candidate_metrics), checked, comparison


@task(retries=2, retry_delay_seconds=[2, 5], retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE)
def register_version(
    registry: str | None, name: str, model: Any, info: VersionInfo, actor: str, snapshot_dataset: bool = True
) -> ModelVersion:
    """Register the model (and a snapshot of its data); a retry of this task gets the same version back.

    The key is :func:`registration_key`: the registry returns the version an earlier attempt of this run made
    (re-serialised bytes included), and refuses the key to anyone else. A model over 8 MiB shows its upload as a
    progress artifact (``<name>-upload``; see :class:`~prefect_model_registry.flows.core.publish.UploadProgress`).
    """
    key = registration_key(name, info, actor)
    return Registry.open(registry).register_model(
        name,
        model,
        info,
        actor=actor,
        operation_key=key,
        snapshot_dataset=snapshot_dataset,
        progress=publish.UploadProgress(name),
    )
