"""Large artifacts (issue 30): this registry's streaming transfers against plain boto3 / coreutils, one sitting.

Starts one SeaweedFS S3 server on 127.0.0.1 and writes one file of random bytes (``os.urandom``) to a temporary
directory on the local disk. Each round measures every row once per side, alternating the sides row by row and
swapping who goes first every round, so both see the same background load. Every measurement runs in a fresh
interpreter: its time is taken inside that process around the operation alone (imports and client set-up
excluded), and its peak RSS is the process's own ``ru_maxrss`` as ``os.wait4`` reports it (children included).

Rows (ours | peer):

- ``register``: ``Registry.register_file(name, path, fmt="bytes")`` into ``s3://`` | a SHA-256 pass, then
  boto3 ``upload_file`` with the same ``TransferConfig`` as ours (64 MiB threshold, 8 MiB parts, 4 at once);
- ``download``: ``Registry.download(uri, path)`` | boto3 ``download_file``, then a SHA-256 pass;
- ``copy``: ``copy_version(source, uri, target)`` between two buckets of the server | boto3's managed
  ``client.copy`` (server-side, same ``TransferConfig``);
- ``register-dir``: ``register_file`` into a directory registry | ``cp``, then a SHA-256 pass over the copy.

The artifact cache is off (``PMR_CACHE_DIR=off``). ``PMR_MULTIPART_CHUNK`` / ``PMR_TRANSFER_CONCURRENCY`` /
``PMR_MULTIPART_THRESHOLD`` in the environment change our side only; the peer keeps 64 / 8 MiB / 4.
``--boto-defaults`` adds a third side to the S3 rows: boto3 with its default ``TransferConfig`` (8 MiB threshold,
8 MiB parts, 10 at once).

Usage::

    .venv/bin/python benchmarks/large_artifacts.py [--size 1G] [--rounds 4] [--only register,download]
        [--boto-defaults] [--tmp DIR]

``--size`` takes MiB or GiB (``512M``, ``1G``, ``4G``; a bare number is MiB). Targets (issue 30): throughput
at least the peer's (ratio peer time / our time >= 1.0) and our peak RSS <= 256 MiB at any size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

MIB = 1024 * 1024
GIB = 1024 * MIB
BUCKET = "pmr-large"
COPY_BUCKET = "pmr-large-copy"
MODEL = "large"
#: The peer's TransferConfig: the registry's defaults (PMR_MULTIPART_THRESHOLD / _CHUNK / TRANSFER_CONCURRENCY).
PEER_PLAN = {"multipart_threshold": 64 * MIB, "multipart_chunksize": 8 * MIB, "max_concurrency": 4}
#: Reads of a hash pass (the registry's own chunk, ``store.base.CHUNK``).
HASH_CHUNK = MIB
ROWS = ("register", "download", "copy", "register-dir")
TITLES = {
    "register": "register (S3)",
    "download": "download (S3)",
    "copy": "copy within one endpoint (S3 -> S3)",
    "register-dir": "register (directory registry)",
}
PEERS = {
    "register": "sha256 + upload_file",
    "download": "download_file + sha256",
    "copy": "client.copy",
    "register-dir": "cp + sha256",
}
S3_ROWS = ("register", "download", "copy")
#: Every row reads and writes the bytes as many times as its peer (register: hash pass + upload on both sides;
#: download: download + hash pass; copy: server-side on both; directory: two reads and one write on both), so
#: none takes the 0.9x allowance the issue gives a design that needs an extra pass.
TARGET_RATIO = {row: 1.0 for row in ROWS}
RSS_TARGET_MIB = 256.0
OURS, PEER, DEFAULTS = "ours", "peer", "boto3 defaults"


# -- the child: one measurement in a fresh interpreter -------------------------------------------------------------
def sha256_file(path: str) -> str:
    """A SHA-256 pass over ``path`` in the registry's read size."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while piece := fh.read(HASH_CHUNK):
            digest.update(piece)
    return digest.hexdigest()


def _client(defaults: bool) -> tuple[Any, Any]:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}),
    )
    return client, (TransferConfig() if defaults else TransferConfig(**PEER_PLAN))


def _kib_now() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_ours(spec: dict[str, Any]) -> dict[str, Any]:
    """Our side of one row: set-up untimed, then the operation timed."""
    from prefect_model_registry.registry import Registry

    op, out = spec["op"], {}
    if op in ("register", "register-dir"):
        reg = Registry.open(spec["location"])
        base = _kib_now()
        t0 = time.perf_counter()
        mv = reg.register_file(MODEL, spec["file"], fmt="bytes")
        seconds = time.perf_counter() - t0
        # The version is published when register_file returns; its ``registered`` event is logged in the
        # background: written here, untimed, before the process ends.
        t1 = time.perf_counter()
        reg.flush()
        out = {
            "uri": mv.uri,
            "sha256": mv.artifact.sha256,
            "parts_sent": getattr(reg.store, "last_parts_sent", 0),
            "flush_s": time.perf_counter() - t1,
        }
    elif op == "download":
        reg = Registry.open(spec["location"])
        base = _kib_now()
        t0 = time.perf_counter()
        reg.download(spec["uri"], spec["out"], force=True)
        seconds = time.perf_counter() - t0
    elif op == "copy":
        from prefect_model_registry.registry.interop.copy import copy_version

        source, target = Registry.open(spec["location"]), Registry.open(spec["target"])
        base = _kib_now()
        t0 = time.perf_counter()
        copy_version(source, spec["uri"], target)
        seconds = time.perf_counter() - t0
        target.flush()
    else:
        raise ValueError(op)
    return {"seconds": seconds, "baseline_kib": base, **out}


def child_peer(spec: dict[str, Any], defaults: bool) -> dict[str, Any]:
    """The peer's side of one row: boto3's managed transfers (or ``cp``) and a hashlib pass."""
    op, out = spec["op"], {}
    if op == "register-dir":
        base = _kib_now()
        t0 = time.perf_counter()
        subprocess.run(["cp", spec["file"], spec["out"]], check=True)
        out["sha256"] = sha256_file(spec["out"])
        seconds = time.perf_counter() - t0
        # Not timed in the row: what making the copy durable adds (ours syncs every object it writes).
        with open(spec["out"], "rb") as fh:
            os.fsync(fh.fileno())
        out["synced_seconds"] = time.perf_counter() - t0
        return {"seconds": seconds, "baseline_kib": base, **out}
    client, config = _client(defaults)
    client.head_bucket(Bucket=spec["bucket"])  # the connection is set up before the clock starts, as ours
    base = _kib_now()
    t0 = time.perf_counter()
    if op == "register":
        out["sha256"] = sha256_file(spec["file"])
        client.upload_file(spec["file"], spec["bucket"], spec["key"], Config=config)
    elif op == "download":
        client.download_file(spec["bucket"], spec["key"], spec["out"], Config=config)
        if sha256_file(spec["out"]) != spec["sha256"]:
            raise RuntimeError("peer download: sha256 differs")
    elif op == "copy":
        origin = {"Bucket": spec["bucket"], "Key": spec["key"]}
        client.copy(origin, spec["target_bucket"], spec["target_key"], Config=config)
    else:
        raise ValueError(op)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "baseline_kib": base, **out}


def child_main(raw: str) -> int:
    spec = json.loads(raw)
    side = spec["side"]
    result = child_ours(spec) if side == OURS else child_peer(spec, defaults=side == DEFAULTS)
    print(json.dumps(result), flush=True)
    return 0


# -- the harness ------------------------------------------------------------------------------------------------------
@dataclass
class Sample:
    seconds: float
    peak_kib: int
    baseline_kib: int
    synced_seconds: float | None = None


@dataclass
class Results:
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)

    def add(self, row: str, side: str, sample: Sample) -> None:
        self.samples.setdefault((row, side), []).append(sample)

    def median(self, row: str, side: str) -> float:
        return statistics.median(s.seconds for s in self.samples[(row, side)])

    def peak_mib(self, row: str, side: str) -> float:
        return max(s.peak_kib for s in self.samples[(row, side)]) / 1024

    def baseline_mib(self, row: str, side: str) -> float:
        return max(s.baseline_kib for s in self.samples[(row, side)]) / 1024


def run_child(spec: dict[str, Any], env: dict[str, str]) -> tuple[dict[str, Any], int]:
    """Run one measurement in a fresh interpreter: its JSON answer and its peak RSS in KiB (from ``wait4``)."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
        stdout=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    data = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['side']} {spec['op']} failed (exit {proc.returncode})")
    return json.loads(data.decode().strip().splitlines()[-1]), usage.ru_maxrss


def parse_size(text: str) -> int:
    """``512M``, ``1G``, ``1.5GiB``, ``300`` (MiB) -> bytes."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = MIB
    if t.endswith("G"):
        unit, t = GIB, t[:-1]
    elif t.endswith("M"):
        t = t[:-1]
    value = int(float(t) * unit)
    if value < MIB:
        raise argparse.ArgumentTypeError(f"size {text!r} is under 1 MiB")
    return value


def human(size: int) -> str:
    return f"{size / GIB:g} GiB" if size >= GIB else f"{size / MIB:g} MiB"


def make_file(path: Path, size: int) -> None:
    """Random bytes, written in 8 MiB pieces (never held whole)."""
    with open(path, "wb") as fh:
        left = size
        while left:
            piece = os.urandom(min(left, 8 * MIB))
            fh.write(piece)
            left -= len(piece)


def delete_prefix(client: Any, bucket: str, prefix: str) -> None:
    """Delete every object under ``prefix`` (and abort unfinished uploads there)."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects = [{"Key": o["Key"]} for o in page.get("Contents", ())]
        if objects:
            client.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
        for up in page.get("Uploads", ()):
            client.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])


def round_order(sides: list[str], r: int) -> list[str]:
    """Ours and the peer swap who goes first every round; boto3 with its defaults (if measured) goes last."""
    pair = [OURS, PEER] if r % 2 == 0 else [PEER, OURS]
    return pair + [s for s in sides if s not in pair]


class Sitting:
    """One server, one file, the sides and what they measured."""

    def __init__(self, server: Any, tmp: Path, file: Path, sides: list[str], env: dict[str, str]) -> None:
        self.server, self.tmp, self.file, self.sides, self.env = server, tmp, file, sides, env
        self.results = Results()
        #: side -> what a download/copy reads: (location or bucket, uri or key, sha256)
        self.stored: dict[str, dict[str, str]] = {}

    def measure(self, row: str, side: str, spec: dict[str, Any]) -> dict[str, Any]:
        answer, peak = run_child({"side": side, "op": row, **spec}, self.env)
        sample = Sample(answer["seconds"], peak, answer["baseline_kib"], answer.get("synced_seconds"))
        self.results.add(row, side, sample)
        rate = self.file.stat().st_size / MIB / answer["seconds"]
        print(f"  {row:13} {side:15} {answer['seconds']:7.2f} s {rate:7.0f} MiB/s  peak {peak / 1024:6.0f} MiB")
        return answer

    def register(self, side: str, tag: str, timed: bool = True) -> None:
        """Put the file into S3 for ``side`` (under the prefix ``tag``), timed as a ``register`` row or not."""
        if side == OURS:
            spec = {"location": f"s3://{BUCKET}/ours/{tag}", "file": str(self.file)}
            answer = (
                self.measure("register", side, spec)
                if timed
                else run_child({"side": side, "op": "register", **spec}, self.env)[0]
            )
            self.stored[side] = {"location": spec["location"], "uri": answer["uri"], "sha256": answer["sha256"]}
        else:
            key = f"{'peer' if side == PEER else 'defaults'}/{tag}/model.bin"
            spec = {"bucket": BUCKET, "key": key, "file": str(self.file)}
            answer = (
                self.measure("register", side, spec)
                if timed
                else run_child({"side": side, "op": "register", **spec}, self.env)[0]
            )
            self.stored[side] = {"bucket": BUCKET, "key": key, "sha256": answer["sha256"]}

    def download(self, side: str) -> None:
        out = self.tmp / f"download-{side.replace(' ', '-')}.bin"
        try:
            self.measure("download", side, {**self.stored[side], "out": str(out)})
        finally:
            out.unlink(missing_ok=True)

    def copy(self, side: str, tag: str) -> None:
        held = self.stored[side]
        if side == OURS:
            self.measure("copy", side, {**held, "target": f"s3://{COPY_BUCKET}/ours/{tag}"})
        else:
            key = f"{'peer' if side == PEER else 'defaults'}/{tag}/model.bin"
            self.measure("copy", side, {**held, "target_bucket": COPY_BUCKET, "target_key": key})

    def register_dir(self, side: str, tag: str) -> None:
        where = self.tmp / f"dir-{side}-{tag}"
        where.mkdir()
        try:
            spec: dict[str, Any] = {"file": str(self.file)}
            if side == OURS:
                spec["location"] = str(where)
            else:
                spec["out"] = str(where / "model.bin")
            self.measure("register-dir", side, spec)
        finally:
            shutil.rmtree(where, ignore_errors=True)

    def round(self, r: int, rows: list[str]) -> None:
        order = round_order(self.sides, r)
        tag = f"r{r}"
        s3 = [row for row in rows if row in S3_ROWS]
        if s3:
            for side in order:
                if "register" in rows:
                    self.register(side, tag)
                elif side not in self.stored:  # download or copy alone: one untimed registration per sitting
                    self.register(side, "seed", timed=False)
            if "download" in rows:
                for side in order:
                    self.download(side)
            if "copy" in rows:
                for side in order:
                    self.copy(side, tag)
        if "register-dir" in rows:
            for side in order:
                if side != DEFAULTS:  # boto3's settings have nothing to do with a local copy
                    self.register_dir(side, tag)
        if "register" in rows:  # this round's objects go (the disk holds a few copies of the file at most)
            for bucket in (BUCKET, COPY_BUCKET):
                for prefix in ("ours", "peer", "defaults"):
                    delete_prefix(self.server.client, bucket, f"{prefix}/{tag}/")
        elif "copy" in rows:
            for prefix in ("ours", "peer", "defaults"):
                delete_prefix(self.server.client, COPY_BUCKET, f"{prefix}/{tag}/")


def print_table(res: Results, rows: list[str], size: int, boto_defaults: bool) -> bool:
    ok = True
    print(
        f"\n| operation ({human(size)}) | ours median s | peer median s | peer | ratio peer/ours | ours MiB/s "
        "| peak RSS MiB ours / peer | target | met |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        mine, theirs = res.median(row, OURS), res.median(row, PEER)
        ratio = theirs / mine
        rss_ours, rss_peer = res.peak_mib(row, OURS), res.peak_mib(row, PEER)
        good = ratio >= TARGET_RATIO[row] and rss_ours <= RSS_TARGET_MIB
        ok &= good
        print(
            f"| {TITLES[row]} | {mine:.2f} | {theirs:.2f} | {PEERS[row]} | {ratio:.2f} | {size / MIB / mine:.0f} "
            f"| {rss_ours:.0f} / {rss_peer:.0f} | >= {TARGET_RATIO[row]:.1f}x, <= {RSS_TARGET_MIB:.0f} MiB "
            f"| {'yes' if good else 'NO'} |"
        )
    if boto_defaults:
        print("\nboto3 with its default TransferConfig (8 MiB threshold and parts, 10 at once), same rounds:")
        print("| operation | boto3 defaults median s | ratio boto3-defaults/ours | peak RSS MiB |")
        print("|---|---|---|---|")
        for row in rows:
            if (row, DEFAULTS) in res.samples:
                theirs = res.median(row, DEFAULTS)
                print(
                    f"| {TITLES[row]} | {theirs:.2f} | {theirs / res.median(row, OURS):.2f} "
                    f"| {res.peak_mib(row, DEFAULTS):.0f} |"
                )
    synced = [s.synced_seconds for s in res.samples.get(("register-dir", PEER), []) if s.synced_seconds]
    if synced and res.samples.get(("register-dir", OURS)):
        ours = statistics.median(s.seconds for s in res.samples[("register-dir", OURS)])
        peer = statistics.median(synced)
        print(
            f"\nregister (directory registry) against cp + sha256 + fsync of the copy (ours syncs what it writes): "
            f"peer median {peer:.2f} s, ratio peer/ours {peer / ours:.2f}"
        )
    print("\nevery sample (s), ours | peer; RSS after imports and set-up (MiB), ours / peer:")
    for row in rows:
        each = {side: " ".join(f"{s.seconds:.2f}" for s in res.samples[(row, side)]) for side in (OURS, PEER)}
        print(
            f"  {row:13} {each[OURS]} | {each[PEER]};  baseline {res.baseline_mib(row, OURS):.0f} / "
            f"{res.baseline_mib(row, PEER):.0f}"
        )
    return ok


def machine() -> str:
    import importlib.metadata as md

    from tests.seaweed import weed_binary

    weed = subprocess.run([weed_binary(), "version"], capture_output=True, text=True)
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")
    return (
        f"{platform.platform()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}; "
        f"prefect-model-registry {md.version('prefect-model-registry')}, boto3 {md.version('boto3')}, "
        f"s3transfer {md.version('s3transfer')}; {weed.stdout.strip().splitlines()[0] if weed.stdout else 'SeaweedFS'}"
    )


def pick_tmp(given: str | None, need: int) -> Path:
    """A directory on the local disk with room for ``need`` bytes (``/dev/shm`` only if the disk is too small)."""
    candidates = [given] if given else [tempfile.gettempdir(), "/dev/shm"]
    for base in candidates:
        if base and os.path.isdir(base) and shutil.disk_usage(base).free >= need:
            return Path(tempfile.mkdtemp(prefix="pmr-large-", dir=base))
    raise SystemExit(f"no directory among {candidates} has {human(need)} free")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=parse_size, default=GIB, help="file size in MiB or GiB: 512M, 1G, 4G (default 1G)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--only", default=",".join(ROWS), help=f"comma-separated rows among {','.join(ROWS)}")
    ap.add_argument("--boto-defaults", action="store_true", help="also boto3 with its default TransferConfig")
    ap.add_argument("--tmp", help="where the file and downloads go (default: the system temp dir)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args.child)
    rows = [row for row in ROWS if row in {r.strip() for r in args.only.split(",")}]
    if not rows:
        ap.error(f"--only names none of {','.join(ROWS)}")

    from tests.seaweed import SeaweedServer

    sides = [OURS, PEER] + ([DEFAULTS] if args.boto_defaults else [])
    # the file, one download or directory copy at a time, and the server's copies (this round's, and what a
    # deleted round may still hold until SeaweedFS compacts its volumes)
    copies = 2 + (2 * len(sides) if "copy" in rows else len(sides)) * min(args.rounds, 2)
    tmp = pick_tmp(args.tmp, copies * args.size + GIB)
    server = SeaweedServer()
    started = time.time()
    try:
        print(f"writing {human(args.size)} of random bytes to {tmp} ...", flush=True)
        file = tmp / "model.bin"
        make_file(file, args.size)
        server.start()
        print(f"SeaweedFS {server.endpoint} (pid {server.proc.pid if server.proc else '?'})", flush=True)
        for bucket in (BUCKET, COPY_BUCKET):
            server.create_bucket(bucket)
        env = {**os.environ, **server.env(), "PMR_CACHE_DIR": "off", "PMR_ACTOR": "benchmark"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        sitting = Sitting(server, tmp, file, sides, env)
        for r in range(args.rounds):
            order = round_order(sides, r)
            print(f"round {r + 1}/{args.rounds} ({' first, then '.join(order)}):", flush=True)
            sitting.round(r, rows)
    finally:
        if server.proc is not None:
            server.stop()  # SIGTERM to the server's process group (its PID), then its data directory goes
        shutil.rmtree(server.dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    tuned = {k: v for k, v in os.environ.items() if k.startswith(("PMR_MULTIPART", "PMR_TRANSFER"))}
    print(f"\n{dt.date.today().isoformat()}, {(time.time() - started) / 60:.1f} min; machine: {machine()}")
    print(
        f"{args.rounds} rounds of {human(args.size)}, sides alternated row by row (first side swapped every round), "
        f"each measurement a fresh process; one SeaweedFS on 127.0.0.1; PMR_CACHE_DIR=off"
        + (f"; ours tuned with {tuned}" if tuned else "")
    )
    ok = print_table(sitting.results, rows, args.size, args.boto_defaults)
    print("\nall targets met" if ok else "\nsome targets NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
