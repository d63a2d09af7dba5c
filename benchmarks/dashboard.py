"""``pmr ui`` server time: the overview with 200 models and a model page at 10 and at 10,000 versions.

Seeds one registry in a temporary directory through the Registry API (tiny artifacts, no operation keys): 200
models of 3 versions each (one in production, an alias), model ``small`` with 10 versions and model ``big`` with
10,000 (``--versions``), both with a promotion every ``PROMOTE_EVERY`` versions, a rollback and alias moves, so
their pages have a chart of every version and a timeline of stages and aliases. The same objects (byte for byte,
same keys) are then copied into a SeaweedFS bucket (``tests/seaweed.py``, on 127.0.0.1): registering 10,000
versions through S3 takes minutes, the copy seconds.

Each page is requested through Starlette's TestClient against the app ``pmr ui`` serves (in this process, no
network in between): the time is the request's time inside the app, median of ``--repeats`` after one warm-up
request. Targets (issue 31): each page <= 1 s, and the model page at 10,000 versions <= 2x its time at 10.

    .venv/bin/python benchmarks/dashboard.py [--versions 10000] [--repeats 7] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PMR_ACTOR", "benchmark")

from starlette.testclient import TestClient  # noqa: E402

from prefect_model_registry.registry import Registry, VersionInfo  # noqa: E402
from prefect_model_registry.registry.core import background  # noqa: E402
from prefect_model_registry.registry.dashboard.app import create_app  # noqa: E402

BUCKET = "pmr-bench-ui"
MODELS = 200
SMALL = 10
PROMOTE_EVERY = 250
TARGET_S = 1.0
TARGET_RATIO = 2.0
PORT = 8765


def info(i: int) -> VersionInfo:
    return VersionInfo(metrics={"auc": 0.7 + (i % 97) / 1000, "f1": 0.6 + (i % 89) / 1000, "loss": 1 / (i + 1)})


def seed_model(reg: Registry, name: str, count: int, progress: bool = False) -> None:
    """``count`` tiny versions; every PROMOTE_EVERY-th (and the last) promoted, a champion alias following."""
    start = time.perf_counter()
    for i in range(1, count + 1):
        reg.register(name, f"{name}-{i}".encode(), info(i), fmt="bytes")
        if i % PROMOTE_EVERY == 0 or i == count or (count <= SMALL and i in (2, 5)):
            reg.promote(name, i, "production", reason=f"better at {i}", through_staging=True)
            reg.set_alias(name, "champion", i, reason="follows production")
        if progress and i % 2000 == 0:
            print(f"  {name}: {i:,} / {count:,} ({i / (time.perf_counter() - start):.0f}/s)", flush=True)
    reg.rollback(name, reason="regression")  # back to the production version before the last
    reg.set_alias(name, "challenger", count, reason="still watched")


def seed(location: str, versions: int) -> None:
    reg = Registry.open(location)
    started = time.perf_counter()
    for m in range(MODELS):
        name = f"model-{m:03d}"
        for i in range(1, 4):
            reg.register(name, f"{name}-{i}".encode(), info(i), fmt="bytes")
        reg.promote(name, 2, "production", reason="first", through_staging=True)
        reg.set_alias(name, "champion", 2, reason="first champion")
    print(f"seeded {MODELS} models in {time.perf_counter() - started:.1f} s", flush=True)
    seed_model(reg, "small", SMALL)
    started = time.perf_counter()
    seed_model(reg, "big", versions, progress=True)
    print(f"seeded big ({versions:,} versions) in {time.perf_counter() - started:.1f} s", flush=True)
    background.flush()


def copy_to(source: str, target: str) -> None:
    """Every object of ``source`` under the same key in ``target`` (in parallel)."""
    src, dst = Registry.open(source).store, Registry.open(target).store
    keys = list(src.list(""))
    started = time.perf_counter()
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda k: dst.put(k, src.get(k).data), keys))
    print(f"copied {len(keys):,} objects to {target} in {time.perf_counter() - started:.1f} s", flush=True)


def median_time(client: TestClient, url: str, repeats: int) -> float:
    response = client.get(url)  # warm-up: the first read of each model fills the process's caches
    assert response.status_code == 200, response.text[:500]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200
    return statistics.median(times)


def first_load(location: str, url: str) -> float:
    """One request to a server just started (nothing read yet): what the first visitor waits."""
    with TestClient(create_app(location, bound_host="127.0.0.1", port=PORT), base_url=f"http://127.0.0.1:{PORT}") as c:
        start = time.perf_counter()
        assert c.get(url).status_code == 200
        return time.perf_counter() - start


def measure(label: str, location: str, repeats: int, versions: int) -> dict[str, float]:
    cold = {"overview, first load": first_load(location, "/")}
    app = create_app(location, bound_host="127.0.0.1", port=PORT)
    with TestClient(app, base_url=f"http://127.0.0.1:{PORT}") as client:
        found = {
            "overview (200+2 models)": median_time(client, "/", repeats),
            f"model page, {SMALL} versions": median_time(client, "/models/small", repeats),
            f"model page, {versions:,} versions": median_time(client, "/models/big", repeats),
        }
        # Not targets: the page asked to chart and list every version (?rows=all), and the pages that read a
        # model's whole log (a version's scoring runs; every model's events), through the log index.
        extra = {
            "model page, every version charted": median_time(client, "/models/big?rows=all", max(3, repeats // 2)),
            f"version page, {versions:,}-version model": median_time(
                client, f"/models/big/versions/{versions // 2}", max(3, repeats // 2)
            ),
            "audit page (every model's events)": median_time(client, "/audit", max(3, repeats // 2)),
        }
    print(f"\n{label}: median of {repeats} (seconds)")
    for what, seconds in {**cold, **found}.items():
        print(f"  {what:<34} {seconds:8.3f}  {'ok' if seconds <= TARGET_S else 'OVER 1 s'}")
    for what, seconds in extra.items():
        print(f"  {what:<34} {seconds:8.3f}  (no target)")
    small, big = list(found.values())[1:]
    ratio = big / small
    print(f"  ratio {versions:,}/{SMALL} versions: {ratio:.1f}x  ({'ok' if ratio <= TARGET_RATIO else 'over 2x'})")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="1,000 versions, 3 repeats")
    parser.add_argument(
        "--seeded", metavar="DIR", help="seed into DIR once and reuse it on later runs (default: a temporary directory)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.versions, args.repeats = 1000, 3
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="pmr-ui-bench-") as tmp:
        local = str(Path(args.seeded or tmp) / f"registry-{args.versions}")
        done = Path(local).with_suffix(".seeded")  # written once seeding finished: a cut-short seed is redone
        if not done.exists():
            shutil.rmtree(local, ignore_errors=True)
            seed(local, args.versions)
            done.touch()
        results["directory"] = measure("directory", local, args.repeats, args.versions)
        from tests.seaweed import SeaweedServer

        server = SeaweedServer()
        try:
            server.start()
            os.environ.update(server.env())
            server.create_bucket(BUCKET)
            remote = f"s3://{BUCKET}/ui"
            copy_to(local, remote)
            results["SeaweedFS"] = measure("SeaweedFS", remote, args.repeats, args.versions)
        finally:
            server.stop()
    ok = all(s <= TARGET_S for r in results.values() for s in r.values())  # the medians; first loads are shown
    ratios_ok = all(list(r.values())[2] / list(r.values())[1] <= TARGET_RATIO for r in results.values())
    print(
        f"\ntargets: every page <= {TARGET_S} s: {'met' if ok else 'NOT met'}; "
        f"{args.versions:,}/{SMALL} <= {TARGET_RATIO}x: {'met' if ratios_ok else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
