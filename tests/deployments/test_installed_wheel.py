"""The package as a team installs it: the wheel, a fresh virtual environment, and a project of the team's own.

The wheel is built from this checkout and installed with ``--no-deps`` into a new virtual environment that sees
this test environment's third-party packages (a ``.pth`` line naming its site-packages) but not the checkout: a
path line in a ``.pth`` file does not run the editable install's finder, which is started by a ``.pth`` file *in*
that site-packages directory. Next to it, a copy of ``tests/data/team_project``: a team repository with its own
``flows/`` and ``registry/`` packages (the names of this repository's folders), a trainer module and its own
``prefect.yaml``. With that environment's Python only:

* the public API imports from the installed files beside the team's ``flows`` and ``registry``, and ``pmr`` runs;
* ``prefect deploy`` deploys the team's ``prefect.yaml``: the team's own flow (``flows/nightly.py``, which calls
  the package's retraining flow) and the package's flow by its module entrypoint, as a Dask sweep;
* a process worker, started in an empty directory (the pull step finds the project), runs both deployments,
  held to a worker policy written at its documented path beside that environment's Python;
* the sweep's candidates train on a separately started ``dask scheduler`` and ``dask worker``, whose Python sees
  the installed package and a directory holding only the team's trainer package.

Every process is started here, watched by ``tests/reaper.py`` and stopped by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

from prefect_model_registry.flows.dev.server import LocalPrefectServer, free_port
from tests.deployments.conftest import alive, descendants
from tests.reaper import guard

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TEAM_PROJECT = ROOT / "tests" / "data" / "team_project"
BATCH = ROOT / "flows" / "data" / "breast_cancer_batch1.csv"
#: The repository's folders, installed as ``prefect_model_registry.<folder>``.
FOLDERS = ("registry", "flows", "validations")
#: This environment's site-packages: the new environment sees it for third-party packages (it lies in the checkout).
THIRD_PARTY = Path(sysconfig.get_paths()["purelib"]).resolve()
#: The issue's budget for the whole test (the pytest-timeout below is the hard stop behind it).
BUDGET_S = 180.0
POOL = "team-pool"
SWEEP_C = [0.01, 1.0, 100.0]  # the sweep deployment's candidates (tests/data/team_project/prefect.yaml)


# -- the wheel --------------------------------------------------------------------------------------------------
def build_wheel(out: Path) -> Path:
    """``pip wheel`` of the checkout: offline when this environment's setuptools can build it."""
    out.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)]
    try:
        offline = int(metadata.version("setuptools").split(".")[0]) >= 77  # pyproject's build requirement
    except metadata.PackageNotFoundError:
        offline = False
    if offline:
        cmd.append("--no-build-isolation")
    # Otherwise pip gets the build backend from the package index into an isolated build environment.
    done = subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = out.glob("prefect_model_registry-*.whl")
    return wheel


def expected_in_wheel() -> set[str]:
    """Every module of the folders' packages and every data file they ship, at its installed path."""
    files = [p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py") if (p.parent / "__init__.py").exists()]
    for pattern in ("registry/**/trusted_types.json", "validations/*/*.yaml", "flows/data/*.csv"):
        files += ROOT.glob(pattern)
    return {f"prefect_model_registry/{p.relative_to(ROOT).as_posix()}" for p in files if "__pycache__" not in p.parts}


def check_wheel(wheel: Path) -> None:
    """One import name, every module and data file, and entry points that name modules the wheel holds."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (eps_file,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_points = zf.read(eps_file).decode()
    # Nothing at the top but the one import name (no bare registry/, flows/, validations/) and the metadata.
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"prefect_model_registry"}, sorted(tops)
    assert "prefect_model_registry/__init__.py" not in names  # an implicit namespace package
    assert "prefect_model_registry/registry/__init__.py" in names
    assert any(n.endswith("/trusted_types.json") for n in names)
    assert any(n.startswith("prefect_model_registry/validations/suites/") for n in names)
    assert any(n.startswith("prefect_model_registry/flows/data/") and n.endswith(".csv") for n in names)
    missing = sorted(expected_in_wheel() - names)
    assert not missing, f"the wheel lacks these (a package missing from pyproject's packages?): {missing}"
    assert "pmr = prefect_model_registry.flows.cli:main" in entry_points.splitlines()
    for line in entry_points.splitlines():
        if " = " in line:
            module = line.split(" = ")[1].split(":")[0].replace(".", "/")
            assert {f"{module}.py", f"{module}/__init__.py"} & names, f"entry point {line!r} names no module"


# -- the fresh environment --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Venv:
    """A virtual environment made here."""

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        return self.root / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"

    @property
    def policy(self) -> Path:
        """The worker policy's documented fixed path beside this Python: ``<sys.prefix>/etc/...``."""
        return self.root / "etc" / "prefect-model-registry" / "worker-policy.yaml"


def make_venv(root: Path, wheel: Path) -> Venv:
    """A venv of the base interpreter with the wheel alone installed, then this environment's third-party packages.

    This environment's pip installs the wheel for the new Python before the ``.pth`` line exists, so it sees an
    empty environment (and never this one's editable install of the same distribution).
    """
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", root], check=True)
    venv = Venv(root)
    pip = [sys.executable, "-m", "pip", "--python", str(venv.python), "install", "-q", "--no-deps", "--no-index"]
    done = subprocess.run([*pip, str(wheel)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (venv.site_packages / "test_environment.pth").write_text(f"{THIRD_PARTY}\n")
    return venv


def clean_env(**settings: str | os.PathLike[str]) -> dict[str, str]:
    """This process's environment less its Prefect, registry, Python and Dask settings, plus ``settings``."""
    drop = ("PREFECT_", "PMR_", "PYTHON", "VIRTUAL_ENV", "DASK_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)} | {k: str(v) for k, v in settings.items()}


def in_checkout(paths: Sequence[str]) -> list[str]:
    """The (absolute) ``sys.path`` entries inside the checkout, other than this environment's site-packages."""
    return [p for p in paths if Path(p).resolve().is_relative_to(ROOT) and Path(p).resolve() != THIRD_PARTY]


def run(cmd: Sequence[object], *, cwd: Path, env: Mapping[str, str], timeout: float = 60) -> str:
    """Run a command to its end and return its stdout (asserting exit 0, with both streams' tails otherwise)."""
    args = [str(c) for c in cmd]
    done = subprocess.run(args, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


# -- processes that keep running --------------------------------------------------------------------------------
@dataclass
class Background:
    """Long-running processes, each in a session of its own (its group can be killed), each with a log file."""

    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    children: dict[str, set[int]] = field(default_factory=dict)

    def start(self, name: str, cmd: Sequence[object], *, cwd: Path, env: Mapping[str, str]) -> None:
        with open(self.logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                [str(c) for c in cmd], cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        guard(proc.pid)  # its group is killed if pytest dies
        self.procs[name] = proc

    def log(self, name: str, chars: int = 4000) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-chars:]

    def wait_for(self, name: str, text: str, timeout: float = 60) -> None:
        """Until ``text`` shows in the process's log (it must not exit first)."""
        deadline = time.monotonic() + timeout
        while text not in self.log(name, chars=1_000_000):
            assert self.procs[name].poll() is None, f"{name} exited early:\n{self.log(name)}"
            assert time.monotonic() < deadline, f"{name} did not say {text!r} within {timeout:g}s:\n{self.log(name)}"
            time.sleep(0.2)

    def finish(self, name: str, timeout: float) -> str:
        """Wait for a command to end; its log, after asserting it exited 0."""
        code = self.procs[name].wait(timeout=timeout)
        assert code == 0, f"{name}: exit {code}\n{self.log(name)}"
        return self.log(name)

    def remember_children(self, name: str) -> None:
        """Note the process's descendants (a worker's flow runs), so that :meth:`stop` can make sure they end."""
        self.children.setdefault(name, set()).update(descendants(self.procs[name].pid))

    def stop(self, name: str, signals: Sequence[tuple[signal.Signals, float]]) -> None:
        """Each signal in turn until the process exits, then SIGKILL to its group and to leftover descendants."""
        proc = self.procs[name]
        self.remember_children(name)
        for sig, grace in signals:
            if proc.poll() is None:
                os.kill(proc.pid, sig)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for pid in self.children[name]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


# Prefect's worker stops gracefully on SIGINT (a second one makes it hurry); Dask's processes on SIGTERM.
WORKER_STOP = ((signal.SIGINT, 20.0), (signal.SIGINT, 10.0))
DASK_STOP = ((signal.SIGTERM, 10.0),)


# -- scripts run by the new environment's Python (each prints one JSON document) ---------------------------------
# In the team project: where every import comes from.
IMPORTS_PROBE = """
import importlib, importlib.metadata as md, json, os, sys
import flows, registry  # the team's own packages
import prefect_model_registry
import prefect_model_registry.registry as api
from prefect_model_registry.flows.pipeline import retrain
modules = ["prefect_model_registry.registry", "prefect_model_registry.flows.pipeline",
           "prefect_model_registry.validations", "prefect_model_registry.flows.cli"]
print(json.dumps({
    "sys_path": [os.path.abspath(p) for p in sys.path],  # "" is the working directory
    "prefix": sys.prefix,
    "finders": [type(f).__module__ + "." + type(f).__qualname__ for f in sys.meta_path],
    "files": {m: importlib.import_module(m).__file__ for m in modules},
    "namespace": list(prefect_model_registry.__path__),
    "distribution": str(md.distribution("prefect-model-registry").locate_file("")),
    "team": {"flows": flows.__file__, "registry": registry.__file__, "actor": registry.TEAM_ACTOR},
    "public": {name: getattr(getattr(api, name), "__module__", None) for name in api.__all__},
    "flow": retrain.name,
}))
"""

# Against the scheduler: what the Dask worker imported from where, and what the scheduler ran.
DASK_PROBE = """
import json, sys
from distributed import Client

def where():
    import os, sys
    loaded = {n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())
              if n.split(".")[0] in ("teamml", "prefect_model_registry", "flows", "registry")}
    return {"sys_path": [os.path.abspath(p) for p in sys.path], "modules": loaded}

def seen(dask_scheduler):
    return sorted({str(t[0]) for t in dask_scheduler.transition_log})

with Client(sys.argv[1], timeout=20) as client:
    print(json.dumps({"workers": list(client.run(where).values()), "keys": client.run_on_scheduler(seen)}))
"""

# The registered versions as the installed package reads them, each loaded (the reviewed types list is package
# data) and asked for predictions.
REGISTRY_PROBE = """
import json, sys
import pandas as pd
from prefect_model_registry.registry import Registry
reg = Registry.open(sys.argv[1], create=False)
rows = pd.read_csv(sys.argv[2]).drop(columns=["target"]).head(5)
out = {}
for name in sys.argv[3:]:
    mv = reg.get_version(name, 1)
    reports = reg.reports(name, 1)
    model = reg.load(f"models:/{name}@staging")
    out[name] = {
        "versions": [v.version for v in reg.versions(name)],
        "stage": reg.state(name).stage_of(1),
        "params": mv.params,
        "lineage": mv.lineage.model_dump(mode="json"),
        "sweep": reports.get("sweep"),
        "policy_reason": [e.reason for e in reg.history(name) if e.type == "policy_set"],
        "model": type(model).__module__ + "." + type(model).__qualname__,
        "predictions": [int(p) for p in model.predict(rows)],
    }
print(json.dumps(out))
"""


# -- the team and its services ----------------------------------------------------------------------------------
@dataclass
class Team:
    """The new environment beside the team's project, and what runs there."""

    venv: Venv
    project: Path
    tmp: Path
    bg: Background
    #: The CLI's settings (the Prefect server's API, once it runs; the registry for pmr).
    env: dict[str, str] = field(default_factory=clean_env)

    @property
    def registry(self) -> Path:
        return self.tmp / "registry"

    @property
    def pmr(self) -> Path:
        return self.venv.root / "bin" / "pmr"

    @property
    def prefect(self) -> list[object]:
        # Prefect's console script is not in the new environment's bin (Prefect is not installed there).
        return [self.venv.python, "-m", "prefect"]

    def probe(self, script: str, *args: object, cwd: Path | None = None) -> Any:
        """Run one of the scripts above with the new Python (in the project by default); what it printed."""
        out = run([self.venv.python, "-c", script, *args], cwd=cwd or self.project, env=clean_env(), timeout=90)
        return json.loads(out.strip().splitlines()[-1])


def team_project(tmp: Path) -> Path:
    """A copy of the team's repository with its data file, away from the checkout."""
    project = tmp / "team-project"
    shutil.copytree(TEAM_PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))
    (project / "data").mkdir()
    shutil.copy(BATCH, project / "data" / BATCH.name)
    return project


@contextmanager
def prefect_server(team: Team) -> Iterator[None]:
    """A Prefect server (SQLite; it needs nothing of the package) and the team's work pool."""
    server = LocalPrefectServer(team.tmp / "server")
    try:
        server.start()
        team.env |= server.client_env() | {
            "PREFECT_HOME": str(team.tmp / "client"),
            "PMR_REGISTRY_URI": str(team.registry),
        }
        run([*team.prefect, "work-pool", "create", POOL, "--type", "process"], cwd=team.project, env=team.env)
        yield
    finally:
        server.stop()


@contextmanager
def dask_cluster(team: Team) -> Iterator[str]:
    """``dask scheduler`` and one ``dask worker`` of the new Python; the worker's directory holds only ``teamml``."""
    trainer_only = team.tmp / "dask-worker"
    shutil.copytree(team.project / "teamml", trainer_only / "teamml", ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    env = clean_env(PREFECT_HOME=team.tmp / "dask-prefect-home")
    dask = [team.venv.python, "-m", "dask"]
    try:
        scheduler = [*dask, "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"]
        team.bg.start("dask-scheduler", scheduler, cwd=team.tmp, env=env)
        team.bg.wait_for("dask-scheduler", "Scheduler at:")
        address = f"tcp://127.0.0.1:{port}"
        # Started with `python -m` in trainer_only: its working directory is on sys.path, so `teamml` comes from it.
        worker = [*dask, "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard"]
        team.bg.start(
            "dask-worker", [*worker, "--local-directory", team.tmp / "dask-scratch"], cwd=trainer_only, env=env
        )
        team.bg.wait_for("dask-worker", "Registered to:")
        yield address
    finally:
        for name in ("dask-worker", "dask-scheduler"):
            if name in team.bg.procs:
                team.bg.stop(name, DASK_STOP)


@contextmanager
def deployed_worker(team: Team, dask_address: str) -> Iterator[None]:
    """The worker policy, ``prefect deploy`` of the team's prefect.yaml, and a process worker serving the pool."""
    # The worker's own rules: the project's data, the registry, the team's trainer and this scheduler, no more.
    policy = {"roots": [str(team.project / "data"), str(team.registry)], "trainer_modules": ["teamml.train"]}
    team.venv.policy.parent.mkdir(parents=True)
    team.venv.policy.write_text(yaml.safe_dump(policy | {"dask_addresses": [dask_address]}))
    # Deployed from the project directory as the team would; the scheduler's address is read at deploy time.
    deploy_env = team.env | {"TEAM_DASK_ADDRESS": dask_address}
    run([*team.prefect, "--no-prompt", "deploy", "--all"], cwd=team.project, env=deploy_env, timeout=120)
    # Started in an empty directory: each flow run's pull step changes into PMR_PROJECT_DIR by itself.
    (team.tmp / "worker-cwd").mkdir()
    worker_env = team.env | {
        "PREFECT_HOME": str(team.tmp / "worker-home"),
        "PMR_PROJECT_DIR": str(team.project),
        "PREFECT_WORKER_QUERY_SECONDS": "1",  # pick runs up at once, not after the default 10 s
    }
    start = [*team.prefect, "worker", "start", "--pool", POOL, "--type", "process", "--name", "team-worker"]
    team.bg.start("worker", start, cwd=team.tmp / "worker-cwd", env=worker_env)
    try:
        team.bg.wait_for("worker", "started!")
        yield
    finally:
        team.bg.stop("worker", WORKER_STOP)


# -- the test ---------------------------------------------------------------------------------------------------
@pytest.mark.timeout(BUDGET_S + 60)
def test_the_wheel_serves_a_team_project_with_its_own_flows_and_registry(tmp_path: Path) -> None:
    started = time.monotonic()
    assert not tmp_path.resolve().is_relative_to(ROOT)
    wheel = build_wheel(tmp_path / "dist")
    check_wheel(wheel)
    team = Team(make_venv(tmp_path / "venv", wheel), team_project(tmp_path), tmp_path, Background(tmp_path))

    # From the team's project, the package imports from the installed files and the team's packages from the project.
    imports = team.probe(IMPORTS_PROBE)
    assert not in_checkout(imports["sys_path"]), f"the checkout is on sys.path: {imports['sys_path']}"
    assert not [f for f in imports["finders"] if "editable" in f], imports["finders"]
    assert Path(imports["prefix"]) == team.venv.root
    for module, file in imports["files"].items():
        assert Path(file).is_relative_to(team.venv.site_packages), f"{module} loaded from {file}"
    assert imports["namespace"] == [str(team.venv.site_packages / "prefect_model_registry")]
    assert Path(imports["distribution"]) == team.venv.site_packages
    assert imports["team"] == {
        "flows": str(team.project / "flows" / "__init__.py"),
        "registry": str(team.project / "registry" / "__init__.py"),
        "actor": "team-nightly-bot",
    }
    assert all(m is None or m.startswith("prefect_model_registry.registry") for m in imports["public"].values())
    assert imports["flow"] == "retrain-model"
    help_text = run([team.pmr, "--help"], cwd=team.project, env=clean_env(COLUMNS="200"))
    assert " ci " in help_text and " suite " in help_text

    with prefect_server(team), dask_cluster(team) as dask_address, deployed_worker(team, dask_address):
        left = BUDGET_S - (time.monotonic() - started)
        # Both runs at once (the worker runs them side by side): the team's flow with Prefect's CLI, the sweep
        # with `pmr ci retrain`, which also checks the registry for the version its run registered.
        nightly = [*team.prefect, "deployment", "run", "team-nightly/nightly", "--watch", "--watch-timeout", int(left)]
        team.bg.start("nightly", nightly, cwd=team.project, env=team.env)
        sweep = [team.pmr, "ci", "retrain", "team-sweep", "--deployment", "retrain-model/sweep", "--timeout", int(left)]
        team.bg.start("sweep", [*sweep, "--expect-stage", "staging", "--poll", "0.5"], cwd=team.project, env=team.env)
        for name in ("nightly", "sweep"):
            team.bg.finish(name, timeout=left + 30)
            team.bg.remember_children("worker")
        dask = team.probe(DASK_PROBE, dask_address, cwd=tmp_path)
    assert "checked: models:/team-sweep/1 is staging" in team.bg.log("sweep")

    shown = team.probe(REGISTRY_PROBE, team.registry, BATCH, "team-nightly", "team-sweep", cwd=tmp_path)
    show = json.loads(
        run([team.pmr, "-r", team.registry, "--json", "show", "team-sweep@staging"], cwd=team.project, env=clean_env())
    )
    assert show["version"] == 1 and show["params"]["trainer"] == "teamml.train:fit"
    run([team.pmr, "-r", team.registry, "verify"], cwd=team.project, env=clean_env())

    # The team's flow (from its own flows/ package) ran the package's retraining with the team's trainer.
    nightly_v1 = shown["team-nightly"]
    assert nightly_v1["versions"] == [1] and nightly_v1["stage"] == "staging"
    assert nightly_v1["params"]["trainer"] == "teamml.train:fit"
    assert nightly_v1["lineage"]["deployment"] == "nightly"
    # The data path is relative to the project directory the pull step changed into.
    assert nightly_v1["lineage"]["dataset_uri"] == "data/breast_cancer_batch1.csv"
    assert nightly_v1["lineage"]["packages"]["prefect-model-registry"] == wheel.name.split("-")[1]
    assert nightly_v1["model"] == "sklearn.pipeline.Pipeline" and len(nightly_v1["predictions"]) == 5
    # The package's retraining, called as a subflow of the team's deployed flow, is held to the worker policy too
    # (the trainer module is allowed by the policy file alone: the worker's environment allows nothing).
    assert nightly_v1["policy_reason"] == ["worker policy's minimum"]

    # The sweep: held to the worker policy, every candidate trained, the best one registered and staged.
    sweep_v1 = shown["team-sweep"]
    assert sweep_v1["versions"] == [1] and sweep_v1["stage"] == "staging"
    assert sweep_v1["lineage"]["deployment"] == "sweep" and sweep_v1["params"]["trainer"] == "teamml.train:fit"
    assert sweep_v1["policy_reason"] == ["worker policy's minimum"]
    summary = sweep_v1["sweep"]["summary"]
    assert summary["candidates"] == len(SWEEP_C) and sweep_v1["params"]["C"] == SWEEP_C[summary["best"] - 1]
    assert sweep_v1["predictions"] and sweep_v1["model"] == "sklearn.pipeline.Pipeline"

    # ... on the Dask worker, which had the installed package and the team's trainer, and nothing of the checkout.
    assert len([k for k in dask["keys"] if k.startswith("train_candidate-")]) == len(SWEEP_C), dask["keys"]
    (worker,) = dask["workers"]
    assert not in_checkout(worker["sys_path"]), worker["sys_path"]
    assert worker["modules"]["teamml.train"] == str(tmp_path / "dask-worker" / "teamml" / "train.py")
    package = {n: f for n, f in worker["modules"].items() if n.startswith("prefect_model_registry.")}
    assert any(n.startswith("prefect_model_registry.flows.") for n in package), sorted(worker["modules"])
    assert all(Path(f).is_relative_to(team.venv.site_packages) for f in package.values()), package
    assert not {"flows", "registry"} & set(worker["modules"]), "the Dask worker imported a bare package name"

    elapsed = time.monotonic() - started
    print(f"\ninstalled-wheel test: {elapsed:.0f}s (budget {BUDGET_S:.0f}s)")
    assert elapsed < BUDGET_S, f"took {elapsed:.0f}s, over the issue's budget of {BUDGET_S:.0f}s"
