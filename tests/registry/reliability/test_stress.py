"""Mixed concurrent stress: several processes register, stage, promote, move aliases, roll back, record
reports and decisions on one model at once, retrying some operations with the same key, while a poller
checks the invariants on every state it reads. At the end ``verify`` is clean and every key landed once."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import threading
import time
from typing import Any

from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.errors import RegistryError
from prefect_model_registry.registry.maintenance.verify import verify

WORKERS = 3
DURATION_S = float(os.environ.get("PMR_STRESS_SECONDS", "6"))
MODEL = "stress"


def _worker(location: str, worker: int, deadline: float) -> dict[str, Any]:
    """Random keyed operations until ``deadline``; some are retried with the same key."""
    reg = Registry.open(location)
    rng = random.Random(worker)
    done: dict[str, Any] = {}  # key -> the outcome's identity (version or event seq, None for a no-op)
    counts = {"ops": 0, "refused": 0, "retries": 0}
    n = 0
    while time.time() < deadline:
        n += 1
        key = f"w{worker}/{n}"
        state = reg.state(MODEL)
        latest = reg.latest_version(MODEL)
        version = rng.randint(1, latest)
        choice = rng.random()
        try:
            if choice < 0.25:
                data = f"w{worker}-{n}".encode()
                run = lambda k=key, d=data: reg.register(MODEL, d, fmt="bytes", operation_key=k)  # noqa: E731
            elif choice < 0.45:
                staged = state.version_in("staging") or [version]
                target = "production" if rng.random() < 0.6 else "staging"
                pick = rng.choice(staged)
                run = lambda k=key, v=pick, t=target: reg.promote(MODEL, v, t, operation_key=k)  # noqa: E731
            elif choice < 0.6:
                alias = rng.choice(["champion", "canary"])
                run = lambda k=key, a=alias, v=version: reg.set_alias(MODEL, a, v, operation_key=k)  # noqa: E731
            elif choice < 0.7:
                run = lambda k=key: reg.rollback(MODEL, move_aliases=True, operation_key=k)  # noqa: E731
            elif choice < 0.85:
                passed = rng.random() < 0.7
                report = {"gate": "thresholds", "passed": passed, "n": n, "checks": []}
                run = lambda k=key, v=version, r=report, p=passed: reg.record_report(  # noqa: E731
                    MODEL, v, "thresholds", r, passed=p, operation_key=k
                )
            else:
                run = lambda k=key, v=version: reg.record_decision(  # noqa: E731
                    MODEL, v, approved=True, reviewer=f"r{worker}", operation_key=k
                )
            outcome = run()
            counts["ops"] += 1
            identity = getattr(outcome, "seq", getattr(outcome, "version", None))
            done[key] = identity
            if rng.random() < 0.2:  # a retry with the same key: the same outcome
                again = run()
                counts["retries"] += 1
                assert getattr(again, "seq", getattr(again, "version", None)) == identity, (key, outcome, again)
        except RegistryError as exc:  # typed refusals (invalid transition, blocked, nothing to roll back)
            counts["refused"] += 1
            done[key] = f"refused: {type(exc).__name__}"
    return {"done": done, **counts}


def test_mixed_concurrent_stress_keeps_every_invariant(location: str) -> None:
    reg = Registry.open(location)
    for i in range(3):
        reg.register(MODEL, f"seed-{i}".encode(), fmt="bytes")
    violations: list[str] = []
    polls = [0]
    stop = threading.Event()

    def poll() -> None:
        reader = Registry.open(location)
        last_seq = last_latest = 0
        while not stop.is_set():
            state = reader.state(MODEL)
            latest = reader.latest_version(MODEL)
            polls[0] += 1
            if len(state.version_in("production")) > 1:
                violations.append(f"two production versions at event {state.seq}: {state.version_in('production')}")
            if state.seq < last_seq or latest < last_latest:
                violations.append(f"went back: seq {last_seq}->{state.seq}, latest {last_latest}->{latest}")
            for alias, v in state.aliases.items():
                if v > latest:
                    violations.append(f"alias {alias} on v{v} beyond latest v{latest}")
            last_seq, last_latest = state.seq, latest

    poller = threading.Thread(target=poll)
    poller.start()
    start = time.time()
    deadline = start + DURATION_S
    ctx = mp.get_context("spawn")
    try:
        with ctx.Pool(WORKERS) as pool:
            results = pool.starmap(_worker, [(location, w, deadline) for w in range(WORKERS)])
    finally:
        stop.set()
        poller.join()
    elapsed = time.time() - start
    assert not violations, violations[:5]
    assert polls[0] > 5
    events = reg.history(MODEL)  # checks the whole chain and that there is no gap
    by_key: dict[str, list[Any]] = {}
    for e in events:
        if e.op_key:
            by_key.setdefault(e.op_key, []).append(e)
    assert all(len(found) == 1 for found in by_key.values()), [k for k, f in by_key.items() if len(f) > 1]
    manifests = reg.versions(MODEL)
    assert sorted(m.version for m in manifests) == list(range(1, len(manifests) + 1))
    keyed = [m.idempotency_key for m in manifests if m.idempotency_key]
    assert len(keyed) == len(set(keyed))
    for result in results:
        for key, identity in result["done"].items():
            if isinstance(identity, int) and key in by_key:
                # What the worker was told is what the log holds for its key.
                event = by_key[key][0]
                assert identity in (event.seq, event.version), (key, identity, event)
    report = verify(reg, MODEL)
    assert report.ok and not [f for f in report.findings if f.severity == "error"], report.findings
    assert len(reg.state(MODEL).version_in("production")) <= 1
    ops = sum(r["ops"] for r in results)
    refused = sum(r["refused"] for r in results)
    retries = sum(r["retries"] for r in results)
    assert ops > WORKERS  # it really ran
    print(
        f"\nstress {'s3' if location.startswith('s3://') else 'local'}: {WORKERS} processes, {elapsed:.1f} s, "
        f"{ops} ops landed ({ops / elapsed:.1f} ops/s), {refused} typed refusals, {retries} same-key retries, "
        f"{polls[0]} invariant polls, {len(events)} events, {len(manifests)} versions"
    )
