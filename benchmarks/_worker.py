"""The worker protocol shared by both sides of ``vs_mlflow.py`` (no third-party imports).

A worker is a long-lived process reading one JSON command per line on stdin and answering one JSON line on
stdout. Each side (this registry, MLflow) runs in its own interpreter and virtual environment, so both pay the
same process and IPC model, and every timing is taken inside the worker around the call alone.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

MIB = 1024 * 1024
#: How many processes race in the contention round, and how many registrations each makes.
CONTENDERS = 8
PER_CONTENDER = 25


def timed(call: Callable[[], Any]) -> float:
    """Milliseconds one call takes."""
    t0 = time.perf_counter()
    call()
    return (time.perf_counter() - t0) * 1000


def serve(handlers: dict[str, Callable[..., Any]]) -> None:
    """Answer commands until stdin closes. Stray prints of a library go to stderr, never into the protocol."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            result = {"ok": True, "result": handlers[request["cmd"]](**request.get("args", {}))}
        except Exception as exc:  # reported to the harness, which fails loudly
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        out.write(json.dumps(result) + "\n")


def contend(
    register_one: Callable[[int], None], start_at: float, finish: Callable[[], None] = lambda: None
) -> dict[str, Any]:
    """One contender: wait for the common start, register :data:`PER_CONTENDER` versions, report timings.

    ``finish`` runs before the end time is taken (what the side still writes after its calls return).
    """
    time.sleep(max(0.0, start_at - time.time()))
    latencies, errors = [], []
    for i in range(PER_CONTENDER):
        t0 = time.perf_counter()
        try:
            register_one(i)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        latencies.append((time.perf_counter() - t0) * 1000)
    finish()
    return {"latencies_ms": latencies, "errors": errors, "end": time.time()}
