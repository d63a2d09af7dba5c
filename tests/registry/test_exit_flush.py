"""A process finishes its own background event writes before it exits (within a bound, and says so if not).

Each test runs a real interpreter that registers a version on a store whose reads from the announcer's thread are
slow, so its ``registered`` event is still being written when the main thread ends: the exit is the moment
``concurrent.futures`` stops taking work, which an ``atexit`` flush came too late for.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from prefect_model_registry.registry.core.log import ModelLog
from prefect_model_registry.registry.store.local import LocalStore

_PROBE = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    from prefect_model_registry.registry import Registry
    from prefect_model_registry.registry.core import announcer
    from prefect_model_registry.registry.store.local import LocalStore

    DELAY, announcer.EXIT_WAIT_S = float(sys.argv[2]), float(sys.argv[3])

    class SlowAnnouncer(LocalStore):
        # Every read the announcer's thread makes waits: its event write is still under way at exit.
        def get(self, key):
            if threading.current_thread().name.startswith("pmr-announce"):
                time.sleep(DELAY)
            return super().get(key)

    reg = Registry(SlowAnnouncer(Path(sys.argv[1])))
    print(reg.register("m", b"one", fmt="bytes").version)
    """
)


def _run(root: Path, delay: float, bound: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROBE, str(root), str(delay), str(bound)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_event_still_being_written_at_exit_lands_before_the_process_ends(tmp_path: Path) -> None:
    done = _run(tmp_path / "registry", delay=0.3, bound=30)
    assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
    assert "cannot schedule new futures" not in done.stderr and "not logged" not in done.stderr, done.stderr
    logged = [(e.type, e.version) for e in ModelLog(LocalStore(tmp_path / "registry"), "m").events()]
    assert logged == [("registered", 1)]


def test_an_exit_waits_for_its_events_within_a_bound_and_says_when_it_could_not(tmp_path: Path) -> None:
    done = _run(tmp_path / "registry", delay=3, bound=0.5)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "still not logged after 0.5s at exit" in line]
    assert len(said) == 1 and "pmr verify --repair" in said[0], done.stderr
