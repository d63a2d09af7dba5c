"""What the S3 server itself allows: bare floors of the write protocols, with nothing of the registry around them.

Each floor does only the object-store requests a protocol needs (same ``S3Store`` client as the registry, same
server), so the registry's own figure can be read against it: ``ours / floor`` is what the registry adds, and
``MLflow / floor`` below 1.0 means no design that needs those requests can match MLflow on this server.

- **sequential**: one process creating versions one after the other with 1, 2 or 3 dependent create-only
  writes each (1: a design whose one write is the whole record; 3: this registry's blob, manifest, event).
- **register 1 MiB**: a 1 MiB upload followed by 1 or 2 dependent small create-only writes.
- **race**: 8 processes x 25 wins of create-only writes on one key sequence (each registration claims one key:
  a per-number race, the cheapest protocol in which writers claim numbers themselves).
- **combining**: 8 processes x 25 registrations through a combining sequencer: a registrant first tries to
  append its own record at the log's end; after a loss it writes a draft under a unique key, and whoever wins
  the next append numbers every pending draft at once (one list + one append per round, however many wait).

Usage: ``.venv/bin/python benchmarks/floors.py [--rounds 2]`` (starts its own SeaweedFS on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect_model_registry.registry.store.s3 import S3Store

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._worker import CONTENDERS, MIB, PER_CONTENDER  # noqa: E402

BUCKET = "pmr-floors"
SEQUENTIAL = 200
RECORD = b"x" * 600  # about the size of a manifest or an event


def _store(env: dict[str, str], bucket: str, prefix: str) -> S3Store:
    os.environ.update(env)  # in a spawned floor process: the server's endpoint and credentials
    from prefect_model_registry.registry.store.s3 import S3Store

    store = S3Store(bucket, prefix)
    store.exists("warm-up")  # the connection is open before timing starts
    return store


def sequential_rate(env: dict[str, str], bucket: str, prefix: str, writes: int, count: int = SEQUENTIAL) -> float:
    """Versions per second when each version is ``writes`` dependent create-only writes of a small record."""
    store = _store(env, bucket, prefix)
    t0 = time.perf_counter()
    for n in range(1, count + 1):
        for w in range(writes):
            store.put(f"seq/{w}/{n:08d}", RECORD, create_only=True)
    return count / (time.perf_counter() - t0)


def register_ms(env: dict[str, str], bucket: str, prefix: str, writes: int, repeats: int = 30) -> float:
    """Median ms of a 1 MiB upload followed by ``writes`` dependent small create-only writes."""
    store = _store(env, bucket, prefix)
    times = []
    for n in range(repeats):
        payload = os.urandom(MIB)
        t0 = time.perf_counter()
        store.put(f"blob/{n}", payload)
        for w in range(writes):
            store.put(f"rec/{w}/{n:08d}", RECORD, create_only=True)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _race_worker(env: dict[str, str], bucket: str, prefix: str, start_at: float, out: Any) -> None:
    from prefect_model_registry.registry.errors import PreconditionFailed

    store = _store(env, bucket, prefix)
    time.sleep(max(0.0, start_at - time.time()))
    won, n = 0, 1
    while won < PER_CONTENDER:
        try:
            store.put(f"k/{n:08d}", RECORD, create_only=True)
            won += 1
        except PreconditionFailed:
            pass
        n += 1
    out.put(time.time())


def _combining_worker(env: dict[str, str], bucket: str, prefix: str, start_at: float, out: Any) -> None:
    from prefect_model_registry.registry.errors import ObjectNotFound, PreconditionFailed

    store = _store(env, bucket, prefix)
    end, numbered = 0, set()

    def read_forward() -> None:
        nonlocal end
        while True:
            try:
                numbered.update(json.loads(store.get(f"log/{end + 1:08d}").data))
            except ObjectNotFound:
                return
            end += 1

    def append(ids: list[str]) -> bool:
        try:
            store.put(f"log/{end + 1:08d}", json.dumps(ids).encode(), create_only=True)
        except PreconditionFailed:
            return False
        numbered.update(ids)
        return True

    time.sleep(max(0.0, start_at - time.time()))
    for _ in range(PER_CONTENDER):
        me = uuid.uuid4().hex
        if append([me]):  # alone at the log's end: one write, no draft
            continue
        store.put(f"drafts/{me}", RECORD)
        while True:
            read_forward()
            if me in numbered:  # another round's winner numbered it
                break
            pending = {me} | {k.rsplit("/", 1)[1] for k in store.list("drafts/")}
            if append(sorted(pending - numbered)):
                break
            time.sleep(random.uniform(0, 0.002))
    out.put(time.time())


def race(env: dict[str, str], bucket: str, prefix: str, worker: Callable[..., None] = _race_worker) -> float:
    """Wall seconds for :data:`CONTENDERS` processes running ``worker`` from a common start to the last one done."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3.0
    procs = [ctx.Process(target=worker, args=(env, bucket, prefix, start_at, out)) for _ in range(CONTENDERS)]
    for p in procs:
        p.start()
    ends = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    return max(ends) - start_at


def _in_process(fn: Callable[..., float], *args: Any) -> float:
    """Run a single-process floor in a fresh interpreter (the same footing as a benchmark worker)."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


def seq_op(writes: int) -> str:
    """The name of the sequential floor with ``writes`` dependent writes per version."""
    return f"sequential, {writes} dependent write(s)/version (versions/s)"


def reg_op(writes: int) -> str:
    """The name of the 1 MiB registration floor with ``writes`` small writes after the upload."""
    return f"1 MiB upload + {writes} dependent small write(s) (ms)"


RACE = f"race: {CONTENDERS} processes x {PER_CONTENDER} create-only claims on one key sequence (wall s)"
COMBINING = f"combining sequencer: {CONTENDERS} processes x {PER_CONTENDER} registrations (wall s)"


def measure(env: dict[str, str], bucket: str, tag: str, *, combining: bool = True) -> dict[str, float]:
    """One round of every floor, under prefixes marked with ``tag``."""
    figures: dict[str, float] = {}
    for writes in (1, 2, 3):
        figures[seq_op(writes)] = _in_process(sequential_rate, env, bucket, f"{tag}-seq{writes}", writes)
    for writes in (1, 2):
        figures[reg_op(writes)] = _in_process(register_ms, env, bucket, f"{tag}-reg{writes}", writes)
    figures[RACE] = race(env, bucket, f"{tag}-race")
    if combining:
        figures[COMBINING] = race(env, bucket, f"{tag}-comb", _combining_worker)
    return figures


def main(argv: list[str] | None = None) -> int:
    from tests.seaweed import SeaweedServer

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    samples: dict[str, list[float]] = {}
    with SeaweedServer() as server:
        server.create_bucket(BUCKET)
        for r in range(args.rounds):
            for op, value in measure(server.env(), BUCKET, f"r{r}").items():
                samples.setdefault(op, []).append(value)
    print(f"\nbare S3 floors on one SeaweedFS, {args.rounds} round(s), median of rounds (every round in brackets)")
    for op, values in samples.items():
        print(f"  {op}: {statistics.median(values):.2f}  [{', '.join(f'{v:.2f}' for v in values)}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
