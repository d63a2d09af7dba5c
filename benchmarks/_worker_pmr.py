"""Benchmark worker for this registry (runs in the project's virtual environment), the twin of _worker_mlflow.py.

Every operation goes through the public :class:`registry.Registry` API on the same S3 server as MLflow's artifacts.

Usage: ``python _worker_pmr.py s3://bucket/prefix`` (commands on stdin, see ``_worker.py``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))
os.environ.setdefault("PMR_ACTOR", "benchmark")
# MLflow downloads the artifact on every call; so does this side (the local artifact cache of a serving process,
# which would make a repeated download a local read, is off here).
os.environ["PMR_CACHE_DIR"] = "off"

from _worker import CONTENDERS, MIB, contend, serve, timed  # noqa: E402

from prefect_model_registry.registry import Registry, VersionInfo  # noqa: E402

reg = Registry.open(sys.argv[1])
if os.environ.get("PMR_BENCH_S3_CLIENT"):  # benchmarks/s3_clients.py: the same S3 requests through another client
    from benchmarks.s3_clients import swap

    swap(reg.store, os.environ["PMR_BENCH_S3_CLIENT"])


# MLflow's side creates every tiny version from one artifact of one run; so does this side (one 64-byte
# artifact, stored once: a registry already holding the bytes does not upload them again).
_TINY = os.urandom(64)


def _tiny(name: str) -> int:
    return reg.register(name, _TINY, VersionInfo(), fmt="bytes").version


def _to_production(name: str, version: int) -> None:
    # MLflow's one call: staging and production in one event, with the checks of both steps (the lifecycle's
    # order is kept), archiving the old production version in the same event.
    reg.promote(name, version, "production", through_staging=True)


def setup(name: str, versions: int) -> dict[str, Any]:
    """Seed ``name`` to ``versions`` tiny versions plus one 1 MiB version in production carrying ``champion``."""
    import time

    t0 = time.perf_counter()
    for _ in range(versions):
        _tiny(name)
    seeded = time.perf_counter() - t0
    target = reg.register(name, os.urandom(MIB), VersionInfo(), fmt="bytes").version
    _to_production(name, target)
    reg.set_alias(name, "champion", target)
    return {"seed_s": seeded, "target": target}


def register_1mib(name: str, repeats: int) -> list[float]:
    """Register a 1 MiB artifact as a new version, ``repeats`` times."""
    payloads = [os.urandom(MIB) for _ in range(repeats)]
    return [timed(lambda p=p: reg.register(name, p, VersionInfo(), fmt="bytes")) for p in payloads]


def resolve_alias(name: str, repeats: int) -> list[float]:
    """Resolve ``champion`` to its version."""
    return [timed(lambda: reg.resolve(f"models:/{name}@champion")) for _ in range(repeats)]


def resolve_download(name: str, repeats: int) -> list[float]:
    """Resolve ``champion`` and read its 1 MiB artifact into memory (hash-checked)."""

    def once() -> None:
        _, data = reg.load_bytes(f"models:/{name}@champion")
        assert len(data) == MIB

    return [timed(once) for _ in range(repeats)]


def set_alias(name: str, repeats: int, versions: list[int]) -> list[float]:
    """Move alias ``canary`` between versions (every call is a real change)."""
    return [timed(lambda i=i: reg.set_alias(name, "canary", versions[i % len(versions)])) for i in range(repeats)]


def new_versions(name: str, count: int) -> list[int]:
    """Register ``count`` tiny versions (untimed preparation) and return their numbers."""
    return [_tiny(name) for _ in range(count)]


def promote(name: str, versions: list[int]) -> list[float]:
    """Put each version in production, archiving the previous production version."""
    return [timed(lambda v=v: _to_production(name, v)) for v in versions]


def list_all(name: str, repeats: int) -> dict[str, Any]:
    """List every version of ``name``."""
    count = 0

    def once() -> None:
        nonlocal count
        count = len(reg.versions(name))

    return {"ms": [timed(once) for _ in range(repeats)], "count": count}


def sequential(name: str, count: int) -> dict[str, Any]:
    """Register ``count`` versions one after the other; versions per second."""
    import time

    t0 = time.perf_counter()
    for _ in range(count):
        _tiny(name)
    reg.flush()  # the clock stops once every registered event has been logged too
    return {"per_s": count / (time.perf_counter() - t0)}


def prepare_contention(name: str) -> None:
    """Nothing to create ahead: the first registration creates the model."""


def contender(name: str, start_at: float) -> dict[str, Any]:
    """One of :data:`CONTENDERS` processes registering versions of ``name`` at once."""
    return contend(lambda _i: _tiny(name), start_at, finish=reg.flush)


def check_dense(name: str, expected: int) -> dict[str, Any]:
    """Whether ``name`` holds exactly versions 1..expected, each with its ``registered`` event."""
    found = sorted(mv.version for mv in reg.versions(name))
    logged = sorted(e.version for e in reg.history(name) if e.type == "registered")
    every = list(range(1, expected + 1))
    return {
        "count": len(found),
        "dense": found == every and logged == every,
        "contenders": CONTENDERS,
    }


if __name__ == "__main__":
    serve(
        {
            f.__name__: f
            for f in (
                setup,
                register_1mib,
                resolve_alias,
                resolve_download,
                set_alias,
                new_versions,
                promote,
                list_all,
                sequential,
                prepare_contention,
                contender,
                check_dense,
            )
        }
    )
