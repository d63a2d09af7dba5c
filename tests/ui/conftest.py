"""Approval-dialog fixtures: one ``prefect server start`` and one headless Chromium per module, the pipeline in
a subprocess, and the Prefect client pointed at that server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from prefect_model_registry.flows.dev.server import LocalPrefectServer

ROOT = Path(__file__).resolve().parents[2]
#: Screenshots land here (git-ignored); CI can keep the folder as a build artifact.
OUTPUT = ROOT / "test-output" / "ui"
#: Verified with Debian's chromium on these machines (shared/design/facts.md).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    """The system Chromium (Debian's ``chromium`` package), never a browser Playwright downloads."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrefectServer]:
    """``prefect server start`` on 127.0.0.1 (API and UI), with its own PREFECT_HOME and SQLite database."""
    server = LocalPrefectServer(tmp_path_factory.mktemp("prefect-ui") / "home")
    server.start(timeout=120)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def prefect_client(server: LocalPrefectServer) -> Iterator[Any]:
    """A sync Prefect client talking to ``server`` (whatever API other tests of the session set up)."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless system Chromium driven by Playwright (a fresh temporary profile per launch)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # a loaded 2-core CI machine renders the UI slowly
    path = chromium_path()
    assert path is not None  # the test module skips first
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A browser tab at a desktop size (also the size of the screenshots)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@dataclass
class PipelineProcess:
    """The retraining pipeline running in its own process against the test's Prefect server."""

    model_name: str
    registry: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """What the process printed (Prefect's logs included)."""
        return self.log.read_text(errors="replace")[-4000:]

    def wait(self, timeout: float = 120) -> int:
        """Its exit code once it ended (0: v2's run completed)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the pipeline did not finish within {timeout}s:\n{self.output()}") from None

    def paused_run(self, server: LocalPrefectServer, timeout: float = 180) -> Any:
        """The flow run of v2 once it is Paused for approval (read through the API)."""
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
        from prefect.client.schemas.objects import StateType

        paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
        deadline = time.monotonic() + timeout
        with prefect_client(server) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    code = self.proc.returncode
                    raise AssertionError(f"the pipeline exited ({code}) before pausing:\n{self.output()}")
                for run in client.read_flow_runs(flow_run_filter=paused):
                    if (run.parameters.get("config") or {}).get("model_name") == self.model_name:
                        return run
                time.sleep(0.5)
        raise AssertionError(f"no paused run of {self.model_name} within {timeout}s:\n{self.output()}")


@pytest.fixture
def pipeline(prefect_server: LocalPrefectServer, tmp_path: Path) -> Iterator[PipelineProcess]:
    """v1 straight to production, then v2 waiting for a reviewer: ``tests/ui/run_pipeline.py`` in a subprocess."""
    model_name = f"breast-cancer-{uuid.uuid4().hex[:4]}"
    registry = str(tmp_path / "registry")
    log = tmp_path / "pipeline.log"
    env = {**os.environ, **prefect_server.client_env(), "PMR_ACTOR": "ci-bot"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.ui.run_pipeline", model_name, registry],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    run = PipelineProcess(model_name, registry, proc, log)
    try:
        yield run
    finally:
        if proc.poll() is None:  # the test failed before the run ended: do not leave it waiting
            proc.kill()
            proc.wait()
