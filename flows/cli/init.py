"""``pmr init``: a team's starter project, outside this package, that ``prefect deploy`` takes as written.

It writes a retraining config, a data-quality suite and thresholds (``pmr suite init``'s), a ``prefect.yaml``
whose deployments run this package's installed flows, and the worker policy those deployments' runs are held to
(:mod:`prefect_model_registry.flows.core.trust`). Everything is checked before anything is written: a non-empty
directory (without ``--force``), a dataset that cannot be read, a target column that is missing or holds a
single value are each one line and exit 2.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from dataclasses import dataclass
from importlib.metadata import version as dist_version
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import typer
import yaml

from prefect_model_registry.flows.errors import ConfigError
from prefect_model_registry.registry.cli.context import current, emit
from prefect_model_registry.registry.names import check_model_name

#: The work pool of the shipped deployments (deployments/prefect.yaml).
DEFAULT_POOL = "pmr-process"
#: When the nightly retraining runs (UTC), as in the shipped deployments.
NIGHTLY_CRON = "0 3 * * *"
#: The registry a project gets when none is given: a directory in the project (flow runs start there).
PROJECT_REGISTRY = ".pmr/registry"
#: The files written beside the suites (suites/MODEL.yaml, suites/MODEL.thresholds.yaml).
FILES = ("retrain.yaml", "prefect.yaml", "worker-policy.yaml")
#: File names that say nothing about the data (``s3://bucket/churn/latest.csv``): the folder names it instead.
_GENERIC_STEMS = frozenset({"latest", "current", "data", "dataset", "train", "training", "input", "export"})


@dataclass(frozen=True)
class Plan:
    """What ``pmr init`` writes, decided and checked before any file is written."""

    project: Path
    worker_dir: str
    model: str
    dataset: str  # as given: what this machine reads now
    dataset_ref: str  # as the config holds it: relative to the project when inside it
    target: str
    registry: str
    pool: str
    classification: bool

    @property
    def suite(self) -> str:
        """The suite's path in the project."""
        return f"suites/{self.model}.yaml"

    @property
    def thresholds(self) -> str:
        """The thresholds' path in the project."""
        return f"suites/{self.model}.thresholds.yaml"


def init(
    directory: Annotated[
        Path, typer.Argument(help="The project directory to write: new or empty (with --force: any).")
    ],
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Training data: CSV or Parquet, a path or s3://bucket/key.")
    ],
    target: Annotated[str, typer.Option("--target", help="The column the model predicts.")],
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            help="Where the versions go: s3://bucket/prefix or a directory (default: pmr's -r or "
            f"PMR_REGISTRY_URI, else {PROJECT_REGISTRY} in the project).",
        ),
    ] = None,
    work_pool: Annotated[str, typer.Option("--work-pool", help="The Prefect work pool of every deployment.")] = (
        DEFAULT_POOL
    ),
    model: Annotated[
        str | None, typer.Option("--model", help="Registry model name (default: from the dataset's name).")
    ] = None,
    worker_dir: Annotated[
        str | None,
        typer.Option(
            "--worker-dir",
            help="Where the project lives on the workers: each flow run starts there (default: DIRECTORY's "
            "absolute path on this machine).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Write into a non-empty directory, replacing files of the same name.")
    ] = False,
) -> None:
    """Write a team's starter project: retrain.yaml, a suite and thresholds, prefect.yaml, worker-policy.yaml."""
    from prefect_model_registry.flows.cli import suite

    plan = _plan(directory, dataset, target, registry, work_pool, model, worker_dir, force)
    as_json = current().json
    captured: io.StringIO | None = None
    written: list[Path] = []
    created_dir = not plan.project.exists()
    ours = [plan.project / r for r in ("suites", plan.suite, plan.thresholds, *FILES)]
    existed = {p for p in ours if p.exists()}
    try:
        plan.project.mkdir(parents=True, exist_ok=True)
        # The suite and thresholds exactly as `pmr suite init` writes them. Its line is printed as it is; with
        # --json its document goes into this command's one document.
        with contextlib.redirect_stdout(io.StringIO()) if as_json else contextlib.nullcontext() as captured:
            suite.init(
                data=plan.dataset,
                target=plan.target,
                out=plan.project / plan.suite,
                thresholds_out=plan.project / plan.thresholds,
                name=plan.model,
                force=force,
            )
        written += [plan.project / plan.suite, plan.project / plan.thresholds]
        for name, text in zip(FILES, (retrain_yaml(plan), prefect_yaml(plan), policy_yaml(plan)), strict=True):
            _write(plan.project / name, text, force)
            written.append(plan.project / name)
    except BaseException:
        # Nothing half-written is left behind: what this run created goes again.
        for path in {plan.project / plan.suite, plan.project / plan.thresholds, *written} - existed:
            path.unlink(missing_ok=True)
        suites = (plan.project / plan.suite).parent
        if suites not in existed and suites.is_dir() and not any(suites.iterdir()):
            suites.rmdir()
        if created_dir:
            _remove_empty_tree(plan.project)
        raise
    files = [str(p.relative_to(plan.project)) for p in written]
    emit(
        {
            "project": str(plan.project),
            "model": plan.model,
            "files": files,
            "work_pool": plan.pool,
            "suite": json.loads(captured.getvalue()) if captured is not None else None,
            "deployments": [f"{flow}/{plan.model}-{kind}" for kind, flow in DEPLOYMENTS],
        },
        [
            f"wrote {plan.project}: {', '.join(files)} (model {plan.model}, work pool {plan.pool})",
            f"next: install worker-policy.yaml on each worker, then `prefect --no-prompt deploy --all` in "
            f"{plan.project} (the steps are at the top of prefect.yaml)",
        ],
    )


# -- checks ----------------------------------------------------------------------------------------------------
def _plan(
    directory: Path,
    dataset: str,
    target: str,
    registry: str | None,
    pool: str,
    model: str | None,
    worker_dir: str | None,
    force: bool,
) -> Plan:
    """Check everything ``pmr init`` needs, reading the dataset once; nothing is written.

    Raises:
        ConfigError: the directory is not usable (or not empty without ``force``), or the target column is
            missing or holds a single value.
        DatasetError: the dataset cannot be read.
        InvalidName: the model name (given or derived) is not a valid registry name.

    """
    from prefect_model_registry.flows.core.training import read_dataset
    from prefect_model_registry.registry.core.files import refuse_symlink
    from prefect_model_registry.validations.profile import is_classification_target

    project = Path(os.path.abspath(directory.expanduser()))
    if project.exists() and not project.is_dir():
        raise ConfigError(f"{project} exists and is not a directory")
    if project.is_dir() and not force:
        entries = sum(1 for _ in project.iterdir())
        if entries:
            raise ConfigError(
                f"{project} is not empty ({entries} entries); pass --force to write the starter files into it "
                "(files of the same name are replaced)"
            )
    if not pool.strip():
        raise ConfigError("--work-pool must not be empty")
    if worker_dir is not None and not os.path.isabs(worker_dir):
        raise ConfigError(f"--worker-dir {worker_dir!r} is not an absolute path (the project's directory on workers)")
    name = check_model_name(model if model is not None else model_name_of(dataset))
    if "://" not in dataset:
        dataset = os.path.abspath(Path(dataset).expanduser())  # what the files record, wherever this ran
    frame = read_dataset(dataset).frame  # the reader the flows use: local paths and s3:// alike
    if target not in frame.columns:
        columns = [str(c) for c in frame.columns]
        shown = ", ".join(columns[:8]) + (f" and {len(columns) - 8} more" if len(columns) > 8 else "")
        raise ConfigError(f"dataset {dataset} has no column {target!r} (its columns: {shown}); check --target")
    values = frame[target].dropna().unique()
    if len(values) < 2:
        what = f"a single value ({values[0]!r})" if len(values) else "no values"
        raise ConfigError(
            f"target column {target!r} of {dataset} has {what}: a model needs at least two different values "
            "(classes) to learn from"
        )
    here = worker_dir or str(project)
    plan = Plan(
        project=project,
        worker_dir=here,
        model=name,
        dataset=dataset,
        dataset_ref=_project_relative(dataset, project),
        target=target,
        registry=_project_relative(given, project) if (given := registry or current().registry) else PROJECT_REGISTRY,
        pool=pool,
        classification=is_classification_target(frame[target]),
    )
    # Never through a symlink (refused before anything is written, as each write would refuse it anyway).
    for relative in ("suites", plan.suite, plan.thresholds, *FILES):
        refuse_symlink(project / relative, "pmr init")
    return plan


def model_name_of(dataset: str) -> str:
    """A registry model name from a dataset's name.

    ``…/churn_2024.csv`` gives ``churn_2024``; a generic file name gives way to its folder's: ``…/churn/latest.csv``
    gives ``churn``.
    """
    path = PurePosixPath(dataset.split("?")[0].removeprefix("file://").removeprefix("s3://"))
    stem = path.stem
    if stem.lower() in _GENERIC_STEMS and path.parent.name:
        stem = path.parent.name
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")
    return re.sub(r"\.{2,}", ".", name)[:128] or "model"


def _project_relative(location: str, project: Path) -> str:
    """A local path as a config holds it: relative to the project when inside it (flow runs start there).

    Other local paths become absolute; other locations (``s3://``, ``file://``) are kept as given.
    """
    if "://" in location:
        return location
    absolute = Path(os.path.abspath(Path(location).expanduser()))
    try:
        return absolute.relative_to(project).as_posix()
    except ValueError:
        return str(absolute)


# -- the files -------------------------------------------------------------------------------------------------
#: The deployments, by name suffix and flow name (each is ``<flow>/<model>-<suffix>``).
DEPLOYMENTS = (
    ("retrain-nightly", "retrain-model"),
    ("retrain", "retrain-model"),
    ("approve", "decide-model"),
    ("rollback", "rollback-model"),
    ("score", "score-batch"),
)


def retrain_config(plan: Plan) -> dict[str, Any]:
    """The retraining config (a ``RetrainConfig``), shared by retrain.yaml and every retraining deployment."""
    return {
        "model_name": plan.model,
        "dataset_uri": plan.dataset_ref,
        "target": plan.target,
        "suite": plan.suite,
        "thresholds": plan.thresholds,
        "estimator": (
            "sklearn.linear_model.LogisticRegression" if plan.classification else "sklearn.linear_model.Ridge"
        ),
        # As the shipped deployments: drift is reported but does not block; a version may be at most a little
        # worse than the champion; production waits for a reviewer (the first version excepted).
        "gates": {"advisory": ["drift"], "min_improvement": -0.005},
        "approval": {"required_for": ["production"], "timeout_seconds": 86400, "poll_interval_seconds": 10},
        "registry": plan.registry,
    }


def retrain_yaml(plan: Plan) -> str:
    """retrain.yaml: the config for runs outside the deployments (``pmr ci retrain --local --config``)."""
    header = (
        "# The retraining config of this project (fields: prefect_model_registry's RetrainConfig), written by\n"
        "# `pmr init`. Relative paths are relative to this directory. prefect.yaml holds the same config for the\n"
        "# deployments (definitions.configs.retrain): change both. Run it here, without a worker:\n"
        "#   pmr ci retrain --local --config retrain.yaml\n"
    )
    return header + yaml.safe_dump(retrain_config(plan), sort_keys=False, width=120)


def _scalar(value: Any) -> str:
    """A value as a YAML flow scalar (JSON is YAML: strings quoted, nothing read as a tag or an anchor)."""
    return json.dumps(value)


def prefect_yaml(plan: Plan) -> str:
    """prefect.yaml: the deployments, from this package's installed flows, with this project's pull step."""
    config = yaml.safe_dump(retrain_config(plan), sort_keys=False, width=120)
    config_block = "".join(f"      {line}\n" for line in config.splitlines())
    m, q = plan.model, _scalar
    reg = q(plan.registry)
    return f"""\
# The deployments of the model {m!r}, written by `pmr init`. They run the flows of the installed
# prefect-model-registry package (module entrypoints): this project holds only the config, the checks
# (suites/) and this file. Deploy from this directory, with PREFECT_API_URL pointing at the server:
#
#   prefect work-pool create {plan.pool} --type process      # once per server
#   prefect --no-prompt deploy --all
#
# Workers need the package installed and worker-policy.yaml installed beside their Python (see that file);
# then `prefect worker start --pool {plan.pool}`. The registry's credentials (AWS_*) come from the worker's
# environment: nothing secret is in this file.

name: {q(m)}
prefect-version: {q(dist_version("prefect"))}

build: null
push: null

# Each flow run starts by changing into the project directory on the worker, so the relative paths of the
# config (suites/, the data or registry when inside the project) resolve there. Change it if the workers keep
# the project elsewhere (and the project root in their worker policy with it).
pull:
  - prefect.deployments.steps.set_working_directory:
      directory: {q(plan.worker_dir)}

definitions:
  work_pools:
    default: &pool
      name: {q(plan.pool)}
      work_queue_name: default
      job_variables: {{}}
  configs:
    # The retraining config (RetrainConfig; the same as retrain.yaml). A run's `config` replaces the whole
    # value, so `pmr ci retrain` merges its overrides over it.
    retrain: &config
{config_block}
deployments:
  # Nightly retraining: versions that pass every gate are staged; production is a reviewer's decision (approve).
  - name: {q(m + "-retrain-nightly")}
    description: Retrain every night on the latest data; versions that pass every gate are staged.
    entrypoint: prefect_model_registry.flows.pipeline.retrain
    tags: [pmr, retrain, scheduled]
    schedules:
      - cron: {q(NIGHTLY_CRON)}
        timezone: UTC
        active: true
    parameters:
      config:
        <<: *config
        target_stage: staging
    work_pool: *pool

  # On demand (the UI, or CI: `pmr ci retrain --deployment retrain-model/{m}-retrain`): to production, once a
  # reviewer approves (the model's first version excepted).
  - name: {q(m + "-retrain")}
    description: Retrain on demand and take the version to production once a reviewer approves.
    entrypoint: prefect_model_registry.flows.pipeline.retrain
    tags: [pmr, retrain, on-demand]
    parameters:
      config:
        <<: *config
        target_stage: production
    work_pool: *pool

  # A reviewer's decision on a staged version (four-eyes: not the registrant), promoted to production if approved:
  #   prefect deployment run decide-model/{m}-approve --param version=3 --param approve=true \
  #     --param reviewer=… --watch
  - name: {q(m + "-approve")}
    description: Record a reviewer's decision on a staged version (and promote it to production if approved).
    entrypoint: prefect_model_registry.flows.lifecycle.decide_model
    tags: [pmr, lifecycle]
    parameters:
      model_name: {q(m)}
      promote: true
      four_eyes: true
      registry: {reg}
    work_pool: *pool

  #   prefect deployment run rollback-model/{m}-rollback --param "reason=…" --watch
  - name: {q(m + "-rollback")}
    description: Put back the previous production version, archiving the current one.
    entrypoint: prefect_model_registry.flows.lifecycle.rollback_model
    tags: [pmr, lifecycle]
    parameters:
      model_name: {q(m)}
      registry: {reg}
    work_pool: *pool

  # Batch scoring, every row stamped with the version that made it (input and output inside the policy's roots):
  #   prefect deployment run score-batch/{m}-score --param input_uri=… --param output_uri=… --watch
  - name: {q(m + "-score")}
    description: Score a batch with the production version; every row is stamped with the version that made it.
    entrypoint: prefect_model_registry.flows.scoring.score_batch
    tags: [pmr, scoring]
    parameters:
      model_uri: {q(f"models:/{m}@production")}
      registry: {reg}
    work_pool: *pool
"""


def policy_roots(plan: Plan) -> list[str]:
    """What the deployments' runs may reach: the project on the workers, the data's folder, the registry."""
    roots = [plan.worker_dir, _root(plan.dataset_ref, folder_of=True), _root(plan.registry, folder_of=False)]
    return list(dict.fromkeys(r for r in roots if r is not None))


def _root(location: str, *, folder_of: bool) -> str | None:
    """The root that holds ``location`` (its folder when ``folder_of``); ``None`` for a path in the project."""
    if location.startswith("s3://"):
        bucket, _, key = location[len("s3://") :].partition("/")
        key = key.rstrip("/")
        folder = key.rpartition("/")[0] if folder_of else key
        return f"s3://{bucket}/{folder}" if folder else f"s3://{bucket}"
    path = location.removeprefix("file://")
    if not os.path.isabs(path):
        return None  # relative: inside the project, which is a root already
    return str(PurePosixPath(path).parent) if folder_of else path


def policy_yaml(plan: Plan) -> str:
    """worker-policy.yaml: the worker policy this project's deployments need (flows/core/trust.py)."""
    policy = {
        "roots": policy_roots(plan),
        "trainer_modules": [],
        "dask_addresses": [],
        "approval": {"stages": ["production"], "four_eyes": True},
    }
    header = (
        "# The worker policy of this project's deployments, written by `pmr init`: every location a run names must\n"
        "# lie in one of `roots` (here the project on the workers, the data's folder and the registry); a trainer\n"
        "# module must be listed in `trainer_modules`. A run's parameters and job variables cannot change it.\n"
        "# Without it on a worker, every deployment run there is refused. Install it beside the worker's Python\n"
        "# (a worker serving other projects too: merge their lists into one file):\n"
        "#   dest=\"$(python -c 'import sys; print(sys.prefix)')/etc/prefect-model-registry\"\n"
        '#   mkdir -p "$dest" && cp worker-policy.yaml "$dest/worker-policy.yaml"\n'
    )
    return header + yaml.safe_dump(policy, sort_keys=False, width=120)


def _write(path: Path, text: str, force: bool) -> None:
    from prefect_model_registry.registry.core.files import write_file

    write_file(path, text.encode("utf-8"), overwrite=force, what="pmr init")


def _remove_empty_tree(root: Path) -> None:
    """Remove ``root`` and the folders below it, if they hold no file (only what this run made)."""
    if not root.is_dir():
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            return
    try:
        root.rmdir()
    except OSError:
        pass
