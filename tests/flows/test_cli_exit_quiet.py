"""A ``pmr`` command sends its Prefect events before it exits, so Prefect's exit drain has nothing left to report.

The Prefect API is the session's test server behind a TCP proxy that holds every new connection for a while: the
events worker is still connecting when the command ends, the moment that left Prefect's ``Still processing items:
1 items remaining...`` on stderr.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from prefect_model_registry.registry import Registry
from tests.flows.conftest import model_events

pytestmark = pytest.mark.usefixtures("prefect_api")


class SlowProxy:
    """A TCP proxy to ``upstream`` that waits ``delay`` seconds before connecting each client it accepts."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream, self.delay = upstream, delay
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        time.sleep(self.delay)
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.server.close()


def _slow_api(delay: float) -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL

    url = urlsplit(str(PREFECT_API_URL.value()))
    proxy = SlowProxy((url.hostname or "127.0.0.1", url.port or 80), delay)
    try:
        yield f"http://127.0.0.1:{proxy.port}{url.path}"
    finally:
        proxy.close()


@pytest.fixture
def slow_api() -> Iterator[str]:
    """The test server's API address behind a proxy that takes 2 s to connect."""
    yield from _slow_api(2.0)


@pytest.fixture
def very_slow_api() -> Iterator[str]:
    """The test server's API address behind a proxy that takes 4 s to connect."""
    yield from _slow_api(4.0)


def _env(api: str) -> dict[str, str]:
    venv = str(Path(sys.executable).parent)
    env = {**os.environ, "PREFECT_API_URL": api, "PATH": f"{venv}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PMR_REGISTRY_URI", None)
    return env


def test_pmr_rollback_sends_its_events_before_exit_and_leaves_stderr_quiet(
    tmp_path: Path, model_name: str, slow_api: str
) -> None:
    location = str(tmp_path / "registry")
    reg = Registry.open(location)
    for i in (1, 2):
        reg.register(model_name, f"model {i}".encode(), fmt="bytes")
        reg.promote(model_name, i, "staging", reason="ok")
        reg.promote(model_name, i, "production", reason="ok")
    pmr = str(Path(sys.executable).parent / "pmr")
    args = [pmr, "--registry", location, "--actor", "ops", "rollback", model_name, "--reason", "v2 misbehaves"]
    done = subprocess.run(args, capture_output=True, text=True, env=_env(slow_api), timeout=120)
    assert done.returncode == 0 and "rolled back v2 -> v1" in done.stdout, done.stdout + done.stderr
    assert "Still processing items" not in done.stderr, done.stderr
    assert done.stderr.strip() == "", done.stderr
    assert "model.rolled-back" in model_events(model_name, {"model.rolled-back"})  # sent, not dropped


_PROBE = textwrap.dedent(
    """
    import sys
    from prefect_model_registry.flows.core import events
    from prefect_model_registry.registry import Registry

    events.EXIT_WAIT_S = 0.5
    reg = Registry.open(sys.argv[1])
    reg.register(sys.argv[2], b"model", fmt="bytes")
    reg.promote(sys.argv[2], 1, "staging", reason="ok")
    """
)


def test_events_not_sent_within_the_bound_are_reported_in_one_line(
    tmp_path: Path, model_name: str, very_slow_api: str
) -> None:
    args = [sys.executable, "-c", _PROBE, str(tmp_path / "registry"), model_name]
    done = subprocess.run(args, capture_output=True, text=True, env=_env(very_slow_api), timeout=120)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "Prefect events not all sent within 0.5s at exit" in line]
    assert len(said) == 1 and "Still processing items" not in done.stderr, done.stderr
