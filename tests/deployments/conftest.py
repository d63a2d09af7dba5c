"""The distributed setup for real: PostgreSQL, a Prefect server on it, the work pool, the deployments from
``deployments/prefect.yaml``, a process worker, and the S3 registry on SeaweedFS. One of each per module.

Every process is started here and stopped by PID at the end (the worker with SIGINT, as Prefect expects); the
worker's flow-run processes are tracked by PID and must be gone too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from prefect_model_registry.flows.dev.server import LocalPrefectServer
from tests.conftest import BUCKET, skip_unless_ci
from tests.deployments.postgres import LocalPostgres, unavailable
from tests.reaper import guard

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PREFECT_YAML = ROOT / "deployments" / "prefect.yaml"
POOL = "pmr-process"
DATA = ROOT / "flows" / "data"


def descendants(pid: int) -> set[int]:
    """PIDs of every living process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Stack:
    """What the module's tests talk to."""

    pg: LocalPostgres
    server: LocalPrefectServer
    env: dict[str, str]
    prefix: str
    registry: str
    dataset: str
    tmp: Path
    worker: subprocess.Popen[bytes] | None = None
    worker_pids: set[int] = field(default_factory=set)

    def cli(self, *args: str | os.PathLike[str], timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess:
        """Run a command (``prefect …``, ``pmr …``) from the venv as a CI job would, output captured."""
        cmd = [str(BIN / str(args[0])), *map(str, args[1:])]
        return subprocess.run(
            cmd,
            env={**self.env, **extra_env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str, **extra_env: str) -> subprocess.Popen[str]:
        """Start a command in the background (output captured; read it with ``communicate``)."""
        cmd = [str(BIN / args[0]), *args[1:]]
        return subprocess.Popen(
            cmd, env={**self.env, **extra_env}, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def worker_log(self) -> str:
        path = self.tmp / "worker.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def track_worker_children(self) -> None:
        """Remember the worker's flow-run processes (so teardown can check they are gone)."""
        if self.worker is not None:
            self.worker_pids |= descendants(self.worker.pid)


def _clean_env() -> dict[str, str]:
    """This process's environment without Prefect or registry settings (the stack sets its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PMR_"))}


@pytest.fixture(scope="session")
def stack(s3_server: Any) -> Iterator[Stack]:
    """PostgreSQL -> Prefect server -> work pool -> ``prefect deploy`` -> process worker, on 127.0.0.1.

    One for the session: starting it takes about 15 s, and every module that uses it leaves it as it found it.
    """
    why = unavailable()
    if why:
        skip_unless_ci(why)
    tmp = Path(tempfile.mkdtemp(prefix="pmr-dist-"))
    prefix = uuid.uuid4().hex
    dataset = f"s3://{BUCKET}/{prefix}/data/breast_cancer_batch1.csv"
    s3_server.client.put_object(
        Bucket=BUCKET,
        Key=f"{prefix}/data/breast_cancer_batch1.csv",
        Body=(DATA / "breast_cancer_batch1.csv").read_bytes(),
    )
    pg = LocalPostgres().start()
    server = LocalPrefectServer(tmp / "server", database_url=pg.url)
    st: Stack | None = None
    try:
        server.start()
        env = {
            **_clean_env(),
            **s3_server.env(),
            **server.client_env(),
            # The CLI commands and the worker are separate clients with their own home.
            "PREFECT_HOME": str(tmp / "client"),
            "PMR_ACTOR": "pytest-ci",
            "PMR_REGISTRY_URI": f"s3://{BUCKET}/{prefix}/registry",
        }
        registry = env["PMR_REGISTRY_URI"]
        # The worker's own policy (flows/core/trust.py): its runs may use this test's prefix of the bucket only.
        stack_policy = {"roots": [f"s3://{BUCKET}/{prefix}"]}
        policy_saved = _install_worker_policy(stack_policy)
        st = Stack(pg=pg, server=server, env=env, prefix=prefix, registry=registry, dataset=dataset, tmp=tmp)
        created = st.cli("prefect", "work-pool", "create", POOL, "--type", "process")
        assert created.returncode == 0, created.stdout + created.stderr
        worker_env = {
            **env,
            "PMR_PROJECT_DIR": str(ROOT),
            # Poll often so the tests do not wait the default 10 s for a run to be picked up.
            "PREFECT_WORKER_QUERY_SECONDS": "1",
        }
        # Started outside the checkout: the deployments' pull step must find the code by itself.
        with open(tmp / "worker.log", "wb") as log:
            st.worker = subprocess.Popen(
                [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--name", "pytest-worker"],
                env=worker_env,
                cwd=tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        guard(st.worker.pid)
        # Deployed as the README says: from the repository root, dataset from the environment, no
        # PMR_PROJECT_DIR (each worker supplies its own checkout when a run starts).
        deployed = st.cli(
            "prefect", "--no-prompt", "deploy", "--prefect-file", PREFECT_YAML, "--all", PMR_DATASET_URI=dataset
        )
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
        _wait_for_worker(st)
        yield st
    finally:
        try:
            if st is not None:
                _stop_worker(st)
        finally:
            _restore_worker_policy(locals().get("policy_saved"))
            server.stop()
            pg.stop()
            shutil.rmtree(tmp, ignore_errors=True)


def _install_worker_policy(policy: dict[str, Any]) -> bytes | None:
    """Write the worker policy at its fixed path in this venv (the worker runs this venv's Python); the old bytes."""
    import yaml

    from prefect_model_registry.flows.core import trust

    path = trust.POLICY_PATHS[0]
    saved = path.read_bytes() if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(policy))
    return saved


def _restore_worker_policy(saved: bytes | None) -> None:
    from prefect_model_registry.flows.core import trust

    path = trust.POLICY_PATHS[0]
    if saved is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(saved)


def _wait_for_worker(st: Stack, timeout: float = 60) -> None:
    """Until the worker says it started (it then polls the pool for runs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert st.worker is not None
        if st.worker.poll() is not None:
            raise RuntimeError(f"the worker exited early:\n{st.worker_log()}")
        if "started!" in st.worker_log():
            return
        time.sleep(0.25)
    raise RuntimeError(f"the worker did not start:\n{st.worker_log()}")


def _stop_worker(st: Stack) -> None:
    """SIGINT to the worker (it does not stop promptly on SIGTERM), escalating; then its flow-run processes."""
    worker = st.worker
    if worker is None:
        return
    st.track_worker_children()
    # A first SIGINT asks for a graceful stop; a second makes Prefect kill the worker; SIGKILL if all else fails.
    for sig, grace in ((signal.SIGINT, 20), (signal.SIGINT, 10), (signal.SIGKILL, 10)):
        if worker.poll() is not None:
            break
        if sig == signal.SIGKILL:
            os.killpg(worker.pid, sig)
        else:
            os.kill(worker.pid, sig)
        try:
            worker.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    leftovers = [pid for pid in st.worker_pids if alive(pid)]
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"flow-run processes outlived the worker: {leftovers}"
