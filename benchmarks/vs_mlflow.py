"""Side by side: this registry against MLflow's model registry, in one sitting, on the same S3 server.

Starts one SeaweedFS S3 server on 127.0.0.1. MLflow 3.17.2 (sqlite backend store, run artifacts in that S3
server) runs in its own virtual environment (``benchmarks/mlflow_env.py`` builds ``.venv-mlflow`` once); this
registry keeps everything in the same server under another prefix. Each side is one long-lived worker process
(``_worker_mlflow.py``, ``_worker_pmr.py``) that times each call by itself; the harness alternates the sides
operation by operation (and swaps who goes first every round), then prints medians and the ratio
ours / MLflow's (below 1.0: this registry is faster).

Usage::

    .venv/bin/python benchmarks/vs_mlflow.py [--scale 10000] [--repeats 15] [--rounds 2]

``--scale`` is the number of versions of the model that is listed and resolved (default 2,000; the issue's
target is 10,000, which takes several minutes to seed on both sides).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks import floors  # noqa: E402
from benchmarks._worker import CONTENDERS, PER_CONTENDER  # noqa: E402
from benchmarks.mlflow_env import MLFLOW_VERSION, mlflow_python  # noqa: E402
from tests.seaweed import SeaweedServer  # noqa: E402

BUCKET = "pmr-bench"
SMALL = 10
SEQUENTIAL = 100
#: The write rows, named once: the table, the targets and the floors each refer to them.
REGISTER = "register 1 MiB (upload + create version)"
SEQUENTIAL_RATE = "sequential creation (versions/s)"
CONTENTION = f"{CONTENDERS} processes x {PER_CONTENDER} registrations of one model (wall s)"


class Worker:
    """One side's long-lived worker process."""

    def __init__(self, label: str, argv: list[str], env: dict[str, str]) -> None:
        self.label = label
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT, bufsize=1
        )

    def call(self, cmd: str, **args: Any) -> Any:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"cmd": cmd, "args": args}) + "\n")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.label} worker died during {cmd}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise RuntimeError(f"{self.label} {cmd} failed: {answer['error']}\n{answer['traceback']}")
        return answer["result"]

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Side:
    """How to start one side, and what it measured."""

    label: str
    argv: list[str]
    env: dict[str, str]
    first_call: str
    first_list: str
    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, op: str, values: list[float]) -> None:
        self.samples.setdefault(op, []).extend(values)

    def start(self) -> Worker:
        return Worker(self.label, self.argv, self.env)


def contention(side: Side, name: str) -> dict[str, Any]:
    """8 processes x 25 registrations of one new model at once: wall time, per-registration latency, errors, gaps."""
    workers = [side.start() for _ in range(CONTENDERS)]
    try:
        workers[0].call("prepare_contention", name=name)
        for w in workers:  # every process has imported its library and opened its client before the start
            w.call("prepare_contention", name=name)
        start_at = time.time() + 1.0
        for w in workers:
            assert w.proc.stdin
            w.proc.stdin.write(json.dumps({"cmd": "contender", "args": {"name": name, "start_at": start_at}}) + "\n")
        results = []
        for w in workers:
            assert w.proc.stdout
            answer = json.loads(w.proc.stdout.readline())
            if not answer["ok"]:
                raise RuntimeError(f"{side.label} contender failed: {answer['error']}")
            results.append(answer["result"])
        check = workers[0].call("check_dense", name=name, expected=CONTENDERS * PER_CONTENDER)
    finally:
        for w in workers:
            w.close()
    return {
        "wall_s": max(r["end"] for r in results) - start_at,
        "latencies": [ms for r in results for ms in r["latencies_ms"]],
        "errors": sum(len(r["errors"]) for r in results),
        "dense": check["dense"],
        "count": check["count"],
    }


def fresh_process(side: Side, repeats: int, code: str | None = None) -> list[float]:
    """Wall milliseconds of a new interpreter that imports the library and runs ``code`` (resolve ``@champion``)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([side.argv[0], "-c", code or side.first_call], env=side.env, cwd=ROOT, check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def run_round(
    r: int, sides: list[Side], workers: dict[str, Worker], repeats: int, scale: int, floor: dict[str, list[float]]
) -> None:
    order = sides if r % 2 == 0 else sides[::-1]
    for side in order:  # each op, side after side
        w = workers[side.label]
        side.add(REGISTER, w.call("register_1mib", name="small", repeats=repeats))
    for side in order:
        w = workers[side.label]
        side.add("resolve alias", w.call("resolve_alias", name="big", repeats=repeats))
    for side in order:
        w = workers[side.label]
        side.add("resolve alias + download 1 MiB", w.call("resolve_download", name="big", repeats=repeats))
    for side in order:
        w = workers[side.label]
        targets = w.call("new_versions", name="small", count=2)
        side.add("set alias", w.call("set_alias", name="small", repeats=repeats, versions=targets))
    for side in order:
        w = workers[side.label]
        fresh = w.call("new_versions", name="small", count=repeats)
        side.add("stage change to production, archiving the previous", w.call("promote", name="small", versions=fresh))
    for side in order:
        w = workers[side.label]
        listed = w.call("list_all", name="big", repeats=max(3, repeats // 3))
        if listed["count"] < scale:
            raise RuntimeError(f"{side.label} listed {listed['count']} versions of big, expected >= {scale}")
        side.add(f"list all versions of a model with {scale:,} versions", listed["ms"])
    for side in order:
        w = workers[side.label]
        side.add("resolve @production, 10 versions", w.call("resolve_alias", name="small", repeats=repeats))
        side.add(f"resolve @production, {scale:,} versions", w.call("resolve_alias", name="big", repeats=repeats))
    for side in order:
        w = workers[side.label]
        side.add(SEQUENTIAL_RATE, [w.call("sequential", name=f"seq-{r}", count=SEQUENTIAL)["per_s"]])
    for side in order:
        c = contention(side, f"race-{r}")
        side.add(CONTENTION, [c["wall_s"]])
        side.add("one registration under that contention", c["latencies"])
        side.add("contention errors + gaps", [c["errors"] + (0 if c["dense"] else 1)])
    for op, value in floors.measure(sides[0].env, BUCKET, f"floor-{r}", combining=False).items():
        floor.setdefault(op, []).append(value)
    for side in order:
        side.add("fresh process: import + first call", fresh_process(side, 2))
        side.add(f"fresh process: import + list {scale:,} versions", fresh_process(side, 2, side.first_list))


#: Operation -> (higher is better, target ratio ours/MLflow's from the issue, or None).
TARGETS: dict[str, tuple[bool, float | None]] = {
    REGISTER: (False, 1.0),
    "resolve alias": (False, None),
    "resolve alias + download 1 MiB": (False, 0.8),
    "set alias": (False, 1.0),
    "stage change to production, archiving the previous": (False, 1.0),
    SEQUENTIAL_RATE: (True, 1.0),
    CONTENTION: (False, 1.0),
    "one registration under that contention": (False, None),
    "fresh process: import + first call": (False, None),
}


def print_table(mlf: Side, ours: Side, scale: int, floor: dict[str, list[float]]) -> bool:
    targets = dict(TARGETS)
    targets[f"list all versions of a model with {scale:,} versions"] = (False, 0.5)
    ok = True
    print("\n| operation (median; ms unless noted) | MLflow | ours | ratio ours/MLflow | target | met |")
    print("|---|---|---|---|---|---|")
    for op, ours_values in ours.samples.items():
        if op.startswith(("resolve @production", "contention errors")):
            continue
        theirs, mine = statistics.median(mlf.samples[op]), statistics.median(ours_values)
        higher_better, target = targets.get(op, (False, None))
        ratio = mine / theirs if theirs else float("inf")
        met = ""
        if target is not None:
            good = (ratio >= target) if higher_better else (ratio <= target)
            ok &= good
            met = "yes" if good else "NO"
        shown = f"{'>=' if higher_better else '<='} {target}" if target is not None else ""
        print(f"| {op} | {theirs:,.1f} | {mine:,.1f} | {ratio:.2f} | {shown} | {met} |")
    flat = statistics.median(ours.samples[f"resolve @production, {scale:,} versions"]) / statistics.median(
        ours.samples["resolve @production, 10 versions"]
    )
    errors = sum(ours.samples["contention errors + gaps"])
    ok &= flat <= 1.1 and errors == 0
    print(f"\nours: resolve @production at {scale:,} versions / at {SMALL} versions = {flat:.2f} (target <= 1.1)")
    print(f"ours: contention errors + gaps = {errors:g}; MLflow: {sum(mlf.samples['contention errors + gaps']):g}")
    print_floors(mlf, ours, floor)
    return ok


def print_floors(mlf: Side, ours: Side, floor: dict[str, list[float]]) -> None:
    """The bare S3 floors of the write rows (``benchmarks/floors.py``), each side as a multiple of its floor."""
    rows = [(SEQUENTIAL_RATE, floors.seq_op(w)) for w in (1, 2, 3)]
    rows += [(REGISTER, floors.reg_op(w)) for w in (1, 2)]
    rows.append((CONTENTION, floors.RACE))
    print("\nbare S3 floors, same server and sitting (only the requests a protocol needs, nothing else):")
    print("| floor | value | MLflow / floor | ours / floor |")
    print("|---|---|---|---|")
    for op, floor_op in rows:
        bare = statistics.median(floor[floor_op])
        theirs, mine = statistics.median(mlf.samples[op]), statistics.median(ours.samples[op])
        print(f"| {floor_op} | {bare:,.2f} | {theirs / bare:.2f} | {mine / bare:.2f} |")


def machine() -> str:
    import importlib.metadata as md

    weed = subprocess.run([str(Path(sys.executable).parent / "weed"), "version"], capture_output=True, text=True)
    return (
        f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"MLflow {MLFLOW_VERSION} (sqlite), prefect-model-registry {md.version('prefect-model-registry')}, "
        f"boto3 {md.version('boto3')}; {weed.stdout.strip().splitlines()[0] if weed.stdout else 'SeaweedFS'}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=2000, help="versions of the listed/resolved model")
    ap.add_argument("--repeats", type=int, default=15, help="calls per operation per round")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)

    mlflow_py = mlflow_python()
    with SeaweedServer() as server:
        server.create_bucket(BUCKET)
        tmp = server.dir / "mlflow"
        tmp.mkdir()
        env = {**os.environ, **server.env(), "MLFLOW_S3_ENDPOINT_URL": server.endpoint, "PMR_ACTOR": "benchmark"}
        env["PYTHONPATH"] = str(ROOT)
        db, artifacts, prefix = tmp / "mlflow.db", f"s3://{BUCKET}/mlflow", f"s3://{BUCKET}/pmr"
        mlf = Side(
            "MLflow",
            [str(mlflow_py), str(HERE / "_worker_mlflow.py"), str(db), artifacts],
            env,
            f"from mlflow import MlflowClient; u='sqlite:///{db}'; "
            "MlflowClient(tracking_uri=u, registry_uri=u).get_model_version_by_alias('big', 'champion')",
            f"from mlflow import MlflowClient; u='sqlite:///{db}'; c=MlflowClient(tracking_uri=u, registry_uri=u); "
            "t=None\nwhile True:\n p=c.search_model_versions(\"name='big'\", max_results=10000, page_token=t)"
            "\n t=p.token\n if not t: break",
        )
        OPEN = "from prefect_model_registry.registry import Registry; Registry.open"
        ours = Side(
            "ours",
            [sys.executable, str(HERE / "_worker_pmr.py"), prefix],
            env,
            f"{OPEN}('{prefix}').resolve('models:/big@champion')",
            f"{OPEN}('{prefix}').versions('big')",
        )
        workers = {s.label: s.start() for s in (mlf, ours)}
        try:
            for side in (mlf, ours):
                for name, n in (("small", SMALL), ("big", args.scale)):
                    done = workers[side.label].call("setup", name=name, versions=n)
                    print(f"{side.label}: seeded {name} to {n:,} versions at {n / done['seed_s']:.0f}/s", flush=True)
            floor: dict[str, list[float]] = {}
            for r in range(args.rounds):
                print(f"round {r + 1}/{args.rounds}...", flush=True)
                run_round(r, [mlf, ours], workers, args.repeats, args.scale, floor)
        finally:
            for w in workers.values():
                w.close()
    print(f"\nmachine: {machine()}")
    print(f"{args.rounds} rounds alternating sides, {args.repeats} calls per operation per round, one SeaweedFS")
    ok = print_table(mlf, ours, args.scale, floor)
    print("\nall targets met" if ok else "\nsome targets NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
