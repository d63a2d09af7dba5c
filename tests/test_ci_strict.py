"""CI cannot go green with the browser and PostgreSQL tests skipped, and fixture servers die with a killed
test process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import skip_unless_ci

ROOT = Path(__file__).resolve().parents[1]


def _system_deps(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    """Run .ci/system-deps where neither chromium nor apt-get is on PATH (only what the script needs)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("id",):
        found = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        (bin_dir / tool).symlink_to(found)
    env = {"PATH": str(bin_dir), **({"CI": ci} if ci is not None else {})}
    return subprocess.run(["/bin/bash", str(ROOT / ".ci" / "system-deps")], env=env, capture_output=True, text=True)


@pytest.mark.parametrize(("ci", "code"), [(None, 0), ("true", 1)])
def test_system_deps_fails_under_ci_when_it_cannot_install(tmp_path: Path, ci: str | None, code: int) -> None:
    result = _system_deps(tmp_path, ci)
    assert result.returncode == code, result.stderr
    assert "no apt-get" in result.stderr


def test_a_missing_dependency_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        skip_unless_ci("no chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but no chromium"):
        skip_unless_ci("no chromium")


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


CHILD = """
import sys, time
sys.path.insert(0, {root!r})
from tests.seaweed import SeaweedServer
import subprocess
from prefect_model_registry.flows.dev import server as flows_server
import tests.conftest  # registers the watchdog for prefect servers, as in a test session
server = SeaweedServer().start()
helper = subprocess.Popen(["sleep", "300"], start_new_session=True)
for hook in flows_server.ON_START:
    hook(helper.pid)  # what LocalPrefectServer.start does for `prefect server start`
print(server.proc.pid, helper.pid, flush=True)
time.sleep(300)
"""


def test_fixture_servers_die_when_the_test_process_is_killed(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(root=str(ROOT))],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    weed_pid, prefect_like_pid = map(int, proc.stdout.readline().split())
    assert not _gone(weed_pid, 0.5) and not _gone(prefect_like_pid, 0.1)
    proc.send_signal(signal.SIGKILL)  # no teardown, no atexit: only the watchdogs can clean up
    proc.wait()
    assert _gone(weed_pid, 15), "SeaweedFS outlived the killed test process"
    assert _gone(prefect_like_pid, 15), "a server started through flows.server outlived the killed test process"
