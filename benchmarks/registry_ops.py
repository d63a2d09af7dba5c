"""Benchmark: registry operations against a real S3 server, for a model with few and with many versions.

Starts a throwaway SeaweedFS S3 server on 127.0.0.1, seeds model ``small`` to 10 versions and model ``big``
to ``--versions`` versions (default 10,000) through the real API, then measures, for each model, the median
and p90 latency over ``--repeats`` calls of: register (1 MiB artifact), resolve ``@production``, resolve +
load (1 MiB, hash-checked), promote, ``versions(limit=50)`` and listing every version key. It also counts the
S3 API calls each operation makes (a botocore ``before-call`` hook on the store's client, and a wrapper around
its direct single-object requests).

Resolving ``@production`` must not grow with the version count: the script exits with status 1 if the
big/small ratio of its median latency is above 2.0.

Usage::

    .venv/bin/python benchmarks/registry_ops.py [--versions N] [--repeats R]

A quick run: ``--versions 500 --repeats 5``. The full run seeds 10,000 versions and takes a few minutes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("PMR_ACTOR", "benchmark")

from prefect_model_registry.registry import Registry  # noqa: E402
from prefect_model_registry.registry.models import VersionInfo  # noqa: E402
from tests.seaweed import SeaweedServer  # noqa: E402

BUCKET = "pmr-bench"
SMALL_VERSIONS = 10
MIB = 1024 * 1024
PAGE = 50
MAX_RESOLVE_RATIO = 2.0
PROBE_REGISTRATIONS = 30
PROBE_ROUNDS = 4
#: Threads must seed this much faster than one registrant to be used.
PROBE_MARGIN = 1.2


# -- request counting ---------------------------------------------------------------------------------
DIRECT_NAMES = {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject"}


@dataclass
class RequestCounter:
    """Counts the S3 API calls of one store: its boto3 client's (each paginated page counts once) and its direct
    single-object requests (:mod:`prefect_model_registry.registry.store.s3.direct`), under the same API names.

    ``lost`` counts conditional writes that lost a race (HTTP 412 or 409): contention on a model's keys.
    """

    calls: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, store: Any) -> None:
        store._client.meta.events.register("before-call.s3.*", self._on_call)
        store._client.meta.events.register("after-call.s3.*", self._after_call)
        direct = store._direct
        if direct is not None:
            send = direct.request

            def counted(method: str, key: str | None, *args: Any, **kwargs: Any) -> Any:
                answer = send(method, key, *args, **kwargs)
                with self._lock:
                    self.calls[DIRECT_NAMES[method] if key is not None else "ListObjectsV2"] += 1
                    self.lost += answer.status in (409, 412)
                return answer

            direct.request = counted

    def _on_call(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls[model.name] += 1

    def _after_call(self, http_response: Any, **_: Any) -> None:
        if http_response is not None and http_response.status_code in (409, 412):
            with self._lock:
                self.lost += 1

    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.lost = 0


# -- statistics ---------------------------------------------------------------------------------------
@dataclass
class Sample:
    """Latencies (seconds) and S3 call counts of the repeats of one operation on one model."""

    seconds: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    by_operation: Counter[str] = field(default_factory=Counter)

    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    def p90_ms(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))] * 1000

    def requests_text(self) -> str:
        lo, hi = min(self.requests), max(self.requests)
        return str(lo) if lo == hi else f"{lo}-{hi}"


def timed(counter: RequestCounter, sample: Sample, call: Callable[[], object]) -> None:
    """Run ``call`` once, adding its latency and S3 call count to ``sample``."""
    counter.reset()
    start = time.perf_counter()
    call()
    sample.seconds.append(time.perf_counter() - start)
    sample.requests.append(counter.total())
    sample.by_operation.update(counter.calls)


# -- seeding ------------------------------------------------------------------------------------------
def register_tiny(reg: Registry, name: str, i: int) -> int:
    """Register a tiny distinct artifact as the next version of ``name``."""
    return reg.register(name, f"{name}-seed-{i}".encode(), VersionInfo(), fmt="bytes").version


def register_many(reg: Registry, name: str, indices: range, workers: int, on_done: Callable[[], None]) -> None:
    """Register one tiny version per index, sequentially or with a pool of ``workers`` threads."""
    if workers <= 1:
        for i in indices:
            register_tiny(reg, name, i)
            on_done()
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in as_completed(pool.submit(register_tiny, reg, name, i) for i in indices):
            future.result()
            on_done()


def seed(reg: Registry, counter: RequestCounter, name: str, count: int, workers: int) -> None:
    """Register ``count`` tiny versions of ``name``, printing progress every 1000 and the seeding rate."""
    counter.reset()
    start = time.perf_counter()
    done = 0

    def progress() -> None:
        nonlocal done
        done += 1
        if done % 1000 == 0:
            rate = done / (time.perf_counter() - start)
            print(f"  {name}: {done:>6,} / {count:,} versions ({rate:.1f}/s)", flush=True)

    register_many(reg, name, range(count), workers, progress)
    elapsed = time.perf_counter() - start
    print(
        f"  {name}: seeded {count:,} versions in {elapsed:.1f} s = {count / elapsed:.1f} registrations/s "
        f"({counter.total() / count:.1f} S3 calls each, {counter.lost} conditional writes lost)",
        flush=True,
    )


def choose_workers(reg: Registry, counter: RequestCounter) -> int:
    """Measure sequential vs 4-thread registration into one model's log and return the worker count to use.

    Concurrent registrants of one model race for the same next version number and event ``seq``
    (create-only writes), so the losers back off (jittered sleep) and re-read. On the 2-CPU machine this
    was written on, the two came out within noise of each other (probes gave sequential 21-27/s vs
    4 threads 15-26/s; a full 10,000-version seed with 4 threads ran at ~22/s, no faster than sequential).
    So threads are used only if they win the probe by PROBE_MARGIN; otherwise seeding is sequential. The
    probe alternates the two modes over several rounds (about 10 s) so drift does not favour either.
    """
    elapsed = {1: 0.0, 4: 0.0}
    lost = {1: 0, 4: 0}
    for round_ in range(PROBE_ROUNDS):
        indices = range(round_ * PROBE_REGISTRATIONS, (round_ + 1) * PROBE_REGISTRATIONS)
        for workers in elapsed:
            counter.reset()
            start = time.perf_counter()
            register_many(reg, f"probe-w{workers}", indices, workers, lambda: None)
            elapsed[workers] += time.perf_counter() - start
            lost[workers] += counter.lost
    total = PROBE_ROUNDS * PROBE_REGISTRATIONS
    rate = {w: total / t for w, t in elapsed.items()}
    chosen = 4 if rate[4] >= PROBE_MARGIN * rate[1] else 1
    print(
        f"seeding probe ({total} registrations each): sequential {rate[1]:.1f}/s, 4 threads {rate[4]:.1f}/s "
        f"({lost[4]} conditional writes lost) -> seeding with {chosen} worker(s)",
        flush=True,
    )
    return chosen


# -- setup and measurement ---------------------------------------------------------------------------
# Both models are seeded first; then every repeat of every operation runs on one model and then the other,
# so server warm-up and drift hit both columns alike instead of inflating whichever is measured first.
Results = dict[str, dict[str, Sample]]


def prepare_model(reg: Registry, counter: RequestCounter, name: str, versions: int, workers: int) -> None:
    """Seed ``name``, then register a 1 MiB version and put it in production (staging first)."""
    print(f"seeding {name} to {versions:,} versions with {workers} worker(s)...", flush=True)
    seed(reg, counter, name, versions, workers)
    target = reg.register(name, os.urandom(MIB), VersionInfo(description="1 MiB load target"), fmt="bytes")
    reg.promote(name, target.version, "staging", reason="benchmark")
    reg.promote(name, target.version, "production", reason="benchmark")


def measure(
    counter: RequestCounter,
    results: Results,
    label: str,
    calls: dict[str, Callable[[int], object]],
    repeats: int,
    prepare: Callable[[str, int], None] | None = None,
) -> None:
    """Time ``calls[model](i)`` for i in range(repeats), alternating models; ``prepare`` runs untimed first."""
    for name in calls:
        results[name][label] = Sample()
    for i in range(repeats):
        for name, call in calls.items():
            if prepare is not None:
                prepare(name, i)
            timed(counter, results[name][label], lambda c=call, i=i: c(i))


def measure_reads(reg: Registry, counter: RequestCounter, results: Results, repeats: int) -> None:
    """Read-only operations, each warmed up once per model before its timed repeats."""
    names = list(results)
    ops: dict[str, Callable[[str], object]] = {
        "resolve @production": lambda n: reg.resolve(f"models:/{n}@production"),
        "resolve + load 1 MiB": lambda n: reg.load_bytes(f"models:/{n}@production"),
        f"versions(limit={PAGE})": lambda n: reg.versions(n, limit=PAGE),
        "list all version keys": lambda n: list(reg.store.list(f"models/{n}/versions/")),
        "latest_version": lambda n: reg.latest_version(n),
    }
    for label, op in ops.items():
        for name in names:
            op(name)
        measure(counter, results, label, {n: lambda _i, n=n, op=op: op(n) for n in names}, repeats)


def measure_promote(reg: Registry, counter: RequestCounter, results: Results, repeats: int) -> None:
    """Alternate versions 1 and 2 into production; the one archived by the last swap is re-staged untimed."""
    pair = (1, 2)
    for name in results:
        for version in pair:
            reg.promote(name, version, "staging", reason="benchmark")

    def restage(name: str, i: int) -> None:
        version = pair[i % 2]
        if reg.state(name).stage_of(version) != "staging":
            reg.promote(name, version, "staging", reason="benchmark")

    calls = {n: lambda i, n=n: reg.promote(n, pair[i % 2], "production", reason="benchmark") for n in results}
    measure(counter, results, "promote (staging -> production)", calls, repeats, restage)


def measure_register(reg: Registry, counter: RequestCounter, results: Results, repeats: int) -> None:
    """Register fresh random 1 MiB artifacts (measured last: it adds versions)."""
    payloads = {n: [os.urandom(MIB) for _ in range(repeats)] for n in results}
    calls = {n: lambda i, n=n: reg.register(n, payloads[n][i], VersionInfo(), fmt="bytes") for n in results}
    measure(counter, results, "register 1 MiB", calls, repeats)


# -- report -------------------------------------------------------------------------------------------
def print_table(small: dict[str, Sample], big: dict[str, Sample], versions: int) -> None:
    """Median (p90) latency, S3 calls and big/small ratio for every operation."""
    head_small, head_big = f"{SMALL_VERSIONS} versions", f"{versions:,} versions"
    print()
    print("median (p90) latency in ms; S3 API calls per operation in brackets")
    print(f"{'operation':<34} | {head_small:>24} | {head_big:>24} | {'ratio (big/small)':>17}")
    print(f"{'-' * 34}-+-{'-' * 24}-+-{'-' * 24}-+-{'-' * 17}")
    for label, s in small.items():
        b = big[label]
        cells = [f"{x.median_ms():8.2f} ({x.p90_ms():8.2f}) [{x.requests_text():>4}]" for x in (s, b)]
        ratio = b.median_ms() / s.median_ms()
        print(f"{label:<34} | {cells[0]:>24} | {cells[1]:>24} | {ratio:>17.2f}")
    print(
        "(each model also holds its 1 MiB production version; the register rows, measured last, "
        "add the repeats' versions)"
    )


def print_resolve_requests(small: dict[str, Sample], big: dict[str, Sample]) -> None:
    """Which S3 calls one resolve makes, per model (totals over all repeats, divided back per call)."""
    print()
    for name, samples in (("small", small), ("big", big)):
        sample = samples["resolve @production"]
        per_call = {op: n / len(sample.requests) for op, n in sorted(sample.by_operation.items())}
        detail = ", ".join(f"{op} {n:g}" for op, n in per_call.items())
        print(f"S3 calls per resolve @production, {name}: {sample.requests_text()} ({detail})")


def verdict(small: dict[str, Sample], big: dict[str, Sample]) -> bool:
    """Print the resolve verdict; True when resolving did not grow with the version count."""
    key = "resolve @production"
    ratio = big[key].median_ms() / small[key].median_ms()
    same_requests = max(big[key].requests) <= max(small[key].requests)
    print()
    print(f"resolve @production: ratio {ratio:.2f} (O(1): must stay near 1)")
    print(
        "resolve @production S3 calls: "
        + ("same for both models" if same_requests else "MORE for the big model (grows with versions)")
    )
    return ratio <= MAX_RESOLVE_RATIO


# -- main ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=10_000, help="versions of the big model")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per operation")
    args = parser.parse_args(argv)
    if args.versions < SMALL_VERSIONS or args.repeats < 1:
        parser.error(f"need --versions >= {SMALL_VERSIONS} and --repeats >= 1")
    return args


def run(server: SeaweedServer, args: argparse.Namespace) -> bool:
    """Everything between starting and stopping the server; True when the verdict passes."""
    os.environ.update(server.env())
    server.create_bucket(BUCKET)
    reg = Registry.open(f"s3://{BUCKET}/bench")
    counter = RequestCounter()
    counter.attach(reg.store)
    workers = choose_workers(reg, counter)
    prepare_model(reg, counter, "small", SMALL_VERSIONS, workers)
    prepare_model(reg, counter, "big", args.versions, workers)
    results: Results = {"small": {}, "big": {}}
    print(f"measuring ({args.repeats} repeats per operation, models alternating)...", flush=True)
    measure_reads(reg, counter, results, args.repeats)
    measure_promote(reg, counter, results, args.repeats)
    measure_register(reg, counter, results, args.repeats)
    small, big = results["small"], results["big"]
    print_table(small, big, args.versions)
    print_resolve_requests(small, big)
    return verdict(small, big)


def main(argv: list[str] | None = None) -> int:
    """Start SeaweedFS, run the benchmark, always stop the server; 1 if resolving grew with versions."""
    args = parse_args(argv)
    started = time.perf_counter()
    server = SeaweedServer()
    try:
        server.start()
        print(f"SeaweedFS S3 at {server.endpoint}; big model: {args.versions:,} versions, {args.repeats} repeats")
        ok = run(server, args)
    finally:
        server.stop()
    print(f"total runtime: {time.perf_counter() - started:.1f} s")
    if not ok:
        print(f"FAIL: resolving @production grew with the version count (ratio > {MAX_RESOLVE_RATIO})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
