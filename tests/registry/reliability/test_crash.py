"""Crash injection: a worker process is killed with SIGKILL at a random point of each operation, then
``verify`` runs (it must not raise, and may only report what an interrupted write leaves), then the operation
is retried with the same key: exactly one outcome, no gap, no duplicate, at most one production version.

The kill point is a store call chosen at random: the worker SIGKILLs itself just before that request, just
after it, or (local backend) with the object's temporary file written but not yet published. That places
every kill inside the operation, which a timer from outside could not.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
from typing import Any

import pytest

from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.errors import ModelNotFound
from prefect_model_registry.registry.maintenance.verify import verify
from tests.registry.reliability.ops import OPS, TRIALS, Op

STORE_CALLS = ("get", "put", "exists", "list", "list_children", "delete")
#: What an interrupted operation may leave behind; the retry (or `pmr verify --repair`) clears the rest.
INTERRUPTED = {"unannounced", "stale_claim", "snapshot_missing"}
FIGURES: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


def _where(said: str) -> str:
    """``before put models/m/events/…`` -> ``before put event`` (which request the kill hit)."""
    mode, method, *rest = said.split()
    key = rest[0] if rest else ""
    kinds = ("events", "versions", "idempotency", "state.json", "latest", "blobs")
    kind = next((k for k in kinds if k in key), "other")
    return f"{mode} {method} {kind}"


def _count_calls(location: str, op: Op) -> int:
    """How many store calls ``op`` makes on a fresh model (where to draw kill points from)."""
    reg = Registry.open(location)
    name = f"count-{op.name}"
    op.setup(reg, name)
    calls = [0]
    for method in STORE_CALLS:
        real = getattr(reg.store, method)

        def counted(*args: Any, _real: Any = real, _method: str = method, **kwargs: Any) -> Any:
            calls[0] += 1
            result = _real(*args, **kwargs)
            return list(result) if _method == "list" else result

        setattr(reg.store, method, counted)
    op.run(reg, name, "count-key")
    return calls[0]


def _child(location: str, op: Op, name: str, key: str, kill_at: int, mode: str, report_fd: int) -> None:
    """In the forked worker: run ``op`` and SIGKILL ourselves at store call ``kill_at``."""
    reg = Registry.open(location)
    calls = [0]

    def die(label: str) -> None:
        os.write(report_fd, f"{mode} {label}\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)

    for method in STORE_CALLS:
        real = getattr(reg.store, method)

        def wrapped(*args: Any, _real: Any = real, _method: str = method, **kwargs: Any) -> Any:
            calls[0] += 1
            label = f"{_method} {args[0] if args else ''}".strip()
            here = calls[0] == kill_at
            if here and mode == "before":
                die(label)
            if here and mode == "torn" and _method == "put":
                reg.store._write_temp(args[1])  # the bytes are on disk, not yet linked into place
                die(label)
            result = _real(*args, **kwargs)
            if _method == "list":
                result = list(result)
            if here and mode in ("after", "torn"):
                die(label)
            return result

        setattr(reg.store, method, wrapped)
    op.run(reg, name, key)


def _crash_once(location: str, op: Op, name: str, key: str, kill_at: int, mode: str) -> str | None:
    """Fork a worker that runs ``op`` and dies at ``kill_at``; the store call it died at, or None if it finished."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: never returns into pytest
        code = 0
        try:
            os.close(read_fd)
            _child(location, op, name, key, kill_at, mode, write_fd)
        except BaseException as exc:
            os.write(write_fd, f"error {type(exc).__name__}: {exc}\n".encode())
            code = 3
        os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        said = pipe.read().strip()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return said
    assert os.WEXITSTATUS(status) == 0, f"the worker failed without being killed: {said}"
    return None


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
def test_crash_at_random_points_then_verify_then_retry(location: str, op: Op) -> None:
    backend = "s3" if location.startswith("s3://") else "local"
    modes = ["before", "after"] + (["torn"] if backend == "local" else [])
    rng = random.Random(f"{op.name}-{backend}-{os.environ.get('PMR_RELIABILITY_SEED', '')}")
    total = _count_calls(location, op)
    reg = Registry.open(location)
    figures = FIGURES[f"{op.name}/{backend}"]
    for trial in range(TRIALS):
        name, key = f"{op.name}-{trial}", f"crash-test/{op.name}/{trial}"
        op.setup(reg, name)
        kill_at, mode = rng.randint(1, total), rng.choice(modes)
        died_at = _crash_once(location, op, name, key, kill_at, mode)
        figures["trials"] += 1
        figures["killed mid-operation" if died_at else "finished before the kill point"] += 1
        if died_at:
            figures[f"killed at: {_where(died_at)}"] += 1
        # verify never raises on what a crash leaves, and finds only the traces of an interrupted write.
        try:
            left = verify(reg, name).findings
        except ModelNotFound:  # killed before its first write under the model's name
            assert not list(reg.store.list(f"models/{name}/"))
            left = []
        assert {f.kind for f in left} <= INTERRUPTED, (died_at, left)
        for finding in left:
            figures[f"left: {finding.kind}"] += 1
        if not left:
            figures["left: nothing"] += 1
        outcome = op.run(reg, name, key)  # the retry, with the same key
        op.check(reg, name, key, outcome)
        assert op.run(reg, name, key) == outcome  # and once more: still the same outcome
        after = verify(reg, name)
        assert after.ok and not after.findings, (died_at, after.findings)
    whole = verify(reg)
    assert whole.ok, whole.findings
    figures["orphan blobs / temp files"] += sum(f.kind in ("orphan_blob", "temp_file") for f in whole.findings)
    print(f"\ncrash figures {op.name}/{backend}: {json.dumps(dict(figures), sort_keys=True)}")
