"""What a deployment's runs may reach, from a file on the worker that no run parameter or job variable changes.

Anyone who can start a run sets its parameters, and in Prefect 3 also its job variables, which include the
flow-run process's environment. So nothing a run depends on to be safe comes from either: the lists of what a
deployment's run may touch live in the *worker policy*, a YAML file at a fixed path beside the Python that runs
the flow (``<sys.prefix>/etc/prefect-model-registry/worker-policy.yaml``, else
``/etc/prefect-model-registry/worker-policy.yaml``)::

    roots:              # every file, prefix or registry a run names must lie inside one of these
      - s3://team-bucket/registry
      - s3://team-bucket/data
      - /srv/pmr/suites
    trainer_modules:    # exact modules a `trainer` may come from (no submodules, no re-exports)
      - team_ml.train
    dask_addresses:     # exact scheduler addresses a sweep may send data to
      - tcp://10.0.0.5:8786
    approval:           # the policy a new model gets (a run's own settings may only tighten it)
      stages: [production]
      four_eyes: true

A flow run that has a deployment is always restricted by it: with no file, it may name no location, no trainer
and no scheduler. A flow called in a person's own process (no deployment) is theirs and is not restricted.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prefect_model_registry.flows.errors import ConfigError
from prefect_model_registry.registry.core.policy import ApprovalRules

#: Where the worker policy is looked for, first match wins. Fixed here on purpose: an environment variable
#: naming it could be set by a run's job variables.
POLICY_PATHS: tuple[Path, ...] = (
    Path(sys.prefix) / "etc" / "prefect-model-registry" / "worker-policy.yaml",
    Path("/etc/prefect-model-registry/worker-policy.yaml"),
)


class NotAllowed(ConfigError):
    """A run named something outside the worker policy (refused before it is read, imported or contacted)."""


class WorkerPolicy(BaseModel):
    """The lists a deployment's runs are held to (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    roots: list[str] = Field(default_factory=list, description="Locations runs may read and write below.")
    trainer_modules: list[str] = Field(default_factory=list, description="Exact modules a trainer may come from.")
    dask_addresses: list[str] = Field(default_factory=list, description="Exact Dask scheduler addresses.")
    approval: ApprovalRules = Field(
        default_factory=ApprovalRules, description="The approval policy a model without one gets."
    )


@dataclass(frozen=True)
class Loaded:
    """A worker policy and the file it came from (``None``: no file, so nothing is allowed)."""

    policy: WorkerPolicy
    source: Path | None

    @property
    def where(self) -> str:
        """Where the list lives, for refusals."""
        paths = " or ".join(str(p) for p in POLICY_PATHS)
        return f"the worker policy {self.source}" if self.source else f"the worker policy (no file at {paths})"


def load() -> Loaded:
    """Read the worker policy from the first of :data:`POLICY_PATHS` that exists.

    Raises:
        ConfigError: the file exists but is unreadable or invalid (a broken policy never means "allow").

    """
    for path in POLICY_PATHS:
        if not path.exists():
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            return Loaded(WorkerPolicy.model_validate(data), path)
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(f"worker policy {path} is unusable ({first}); fix it, runs stay refused") from None
    return Loaded(WorkerPolicy(), None)


def restricted() -> bool:
    """Whether this code runs inside a flow run started from a deployment, or nested in one (a subflow).

    A server-side fact, not a setting. A subflow's own run has no ``deployment_id`` (a team's deployed flow that
    calls ``retrain`` as a subflow was unrestricted before), so the deployment id Prefect's engine keeps for
    every flow nested in a deployment's run counts too. That context variable is private to Prefect; the public
    ``prefect.runtime.deployment.id`` reads it first but may make an API call when it is unset.
    """
    from prefect.context import FlowRunContext, _deployment_id

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return False
    return ctx.flow_run.deployment_id is not None or _deployment_id.get() is not None


# -- locations ------------------------------------------------------------------------------------------------
def _s3_parts(value: str) -> tuple[str, tuple[str, ...]]:
    bucket, _, key = value[len("s3://") :].partition("/")
    parts = tuple(p for p in key.split("/") if p)
    if not bucket or any(p in (".", "..") for p in parts):
        raise NotAllowed(f"{value!r} is not a plain s3://bucket/key location")
    return bucket, parts


def _local(value: str) -> Path:
    if "://" in value and not value.startswith("file://"):
        raise NotAllowed(f"{value!r}: only s3:// and local paths are allowed")
    # resolve() follows every symlink, so a link inside a root that points outside is judged by its target.
    return Path(value.removeprefix("file://")).resolve()


def _resolved(value: str) -> tuple[str, tuple[str, ...]]:
    """Where a location is and its whole segments, after resolving: ``("s3://bucket", key parts)`` or a path's.

    Raises:
        NotAllowed: not a location this check understands.

    """
    if value.startswith("s3://"):
        bucket, parts = _s3_parts(value)
        return f"s3://{bucket}", parts
    return "file", _local(value).parts


def _contains(root: tuple[str, tuple[str, ...]], location: tuple[str, tuple[str, ...]]) -> bool:
    return root[0] == location[0] and location[1][: len(root[1])] == root[1]


def _resolved_roots(roots: Iterable[str]) -> Iterator[tuple[str, tuple[str, ...]]]:
    for root in roots:
        try:
            yield _resolved(root)
        except NotAllowed:
            continue  # a root that is no location allows nothing


def inside(value: str, root: str) -> bool:
    """Whether ``value`` lies in ``root``, judged on whole path segments of what each resolves to."""
    return _contains(_resolved(root), _resolved(value))


def within(value: str, roots: Iterable[str]) -> bool:
    """Whether ``value`` lies in one of ``roots`` (a location this check does not understand does not)."""
    try:
        location = _resolved(value)
    except NotAllowed:
        return False
    return any(_contains(root, location) for root in _resolved_roots(roots))


def check_location(field: str, value: str, loaded: Loaded) -> None:
    """Refuse ``value`` unless it lies inside one of the worker policy's roots.

    Raises:
        NotAllowed: outside every root (or not a location this check understands, said as such).

    """
    location = _resolved(value)  # resolved once, then compared with every root
    if any(_contains(root, location) for root in _resolved_roots(loaded.policy.roots)):
        return
    roots = ", ".join(loaded.policy.roots) or "none"
    raise NotAllowed(
        f"config field {field!r}: {value!r} is outside the locations this worker allows ({roots}); "
        f"the list is 'roots' in {loaded.where}"
    )


def is_bundled_name(ref: str) -> bool:
    """A suite or thresholds reference that names a file bundled with the package, not a path."""
    return "/" not in ref and not ref.endswith((".yaml", ".yml", ".json")) and PurePosixPath(ref).name == ref


def check_dask_address(address: str, loaded: Loaded) -> None:
    """Refuse a Dask scheduler address that is not listed exactly (the sweep sends it the training data).

    Raises:
        NotAllowed: not in ``dask_addresses``.

    """
    if address not in loaded.policy.dask_addresses:
        listed = ", ".join(loaded.policy.dask_addresses) or "none"
        raise NotAllowed(
            f"config field 'dask_address': {address!r} is not allowed ({listed}); "
            f"the list is 'dask_addresses' in {loaded.where}"
        )


def check_reviewers(run_reviewers: list[str] | None, model_rules: ApprovalRules | None, loaded: Loaded) -> None:
    """A run may narrow the reviewers the model's policy lists, never name its own.

    Raises:
        NotAllowed: the run lists reviewers while the model's policy (or the worker's minimum for a new model)
            lists none, or lists someone the policy does not.

    """
    if run_reviewers is None:
        return
    rules = model_rules if model_rules is not None else loaded.policy.approval
    allowed = rules.reviewers
    if allowed is None or not set(run_reviewers) <= set(allowed):
        raise NotAllowed(
            f"config field 'approval.reviewers': a run may only narrow the model's reviewer list "
            f"({', '.join(allowed) if allowed else 'none listed'}), not name its own; "
            f"change the model's policy with `pmr policy set` (an audited change)"
        )


def guard(**locations: str | None) -> Loaded | None:
    """In a deployment's run, refuse any of ``locations`` (field name -> value) outside the worker's roots.

    A ``registry`` of ``None`` is checked as the default registry it opens. Outside a deployment's run this
    checks nothing and returns ``None``.

    Raises:
        NotAllowed: the first field outside the roots.

    """
    if not restricted():
        return None
    loaded = load()
    check_locations(loaded, locations)
    return loaded


def check_locations(loaded: Loaded, locations: Mapping[str, str | None]) -> None:
    """Refuse the first of ``locations`` (field name -> value) that lies outside the worker policy's roots.

    A ``registry`` of ``None`` is the default registry it opens; any other ``None`` is not set.

    Raises:
        NotAllowed: the first field outside the roots.

    """
    from prefect_model_registry.registry.store.base import default_location

    for field, value in locations.items():
        if value is None and field == "registry":
            value = default_location()
        if value is not None:
            check_location(field, value, loaded)
