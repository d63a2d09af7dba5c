"""Servers started by test fixtures die with the test process, even when it is killed with SIGKILL.

``guard(pid)`` starts a tiny watchdog (this file run as a script) that polls its parent, the test process.
When the parent is gone (its parent pid changes), the watchdog kills the server's whole process group: SIGTERM,
then SIGKILL after a grace period. Servers are started with ``start_new_session=True`` so that the group holds
every process they spawn (Prefect's uvicorn, PostgreSQL's backends, a server run through ``runuser``), which
``PR_SET_PDEATHSIG`` could not reach: that signal only covers the direct child, and is cleared by ``runuser``'s
change of user. The watchdog also exits by itself once the group is gone (a normal stop).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

POLL_S = 0.2
GRACE_S = 5.0


def guard(pgid: int) -> subprocess.Popen[bytes]:
    """Kill process group ``pgid`` when this process dies; returns the watchdog (it ends on its own)."""
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), str(os.getpid()), str(pgid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # not in the test's group: a Ctrl-C there must not kill the watchdog first
        close_fds=True,
    )


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(parent: int, pgid: int) -> None:
    while os.getppid() == parent:
        if not _group_alive(pgid):
            return  # stopped normally
        time.sleep(POLL_S)
    for sig, wait in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(POLL_S)


if __name__ == "__main__":
    _watch(int(sys.argv[1]), int(sys.argv[2]))
