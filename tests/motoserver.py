"""Start and stop moto's S3 server (``moto_server``) on 127.0.0.1: a second S3 implementation for the contract.

SeaweedFS is the S3 server the suite is built around; moto answers the same requests with code of its own, so
the object-store contract run against both checks our client (boto3 and the direct requests of
``registry/store/s3/direct.py``) rather than one server's habits. moto checks a write's condition and then
writes, with no lock between the two: it honours ``If-None-Match: *`` and ``If-Match`` one request at a time but
does not order racing writers, so the concurrency tests stay on SeaweedFS.
"""

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
from typing import Any

from tests.reaper import guard

ACCESS_KEY = "pmr-moto-access"
SECRET_KEY = "pmr-moto-secret-key"  # moto checks no signature: a placeholder for the signers, not a credential
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def moto_command() -> list[str]:
    """The command that runs moto's server: the ``moto_server`` script beside this Python, else ``-m moto.server``."""
    script = Path(sys.executable).parent / "moto_server"
    return [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]


class MotoServer:
    """A throwaway moto S3 server in a subprocess of its own; use as a context manager."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pmr-moto-"))
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: Any = None

    def env(self) -> dict[str, str]:
        """The environment that points boto3 (and the direct S3 requests) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def start(self, timeout: float = 30.0) -> MotoServer:
        """Start the server and wait until it answers S3 requests."""
        cmd = [*moto_command(), "-H", "127.0.0.1", "-p", str(self.port)]
        # No AWS variables of the caller's: the server needs none, and a real account's must not reach it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        log = open(self.dir / "moto.log", "wb")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        guard(self.proc.pid)  # the server dies with this process, even if it is killed
        import boto3
        from botocore.config import Config

        client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=1),
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited early: {(self.dir / 'moto.log').read_text()[-2000:]}")
            try:
                client.list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto_server did not become ready") from None
                time.sleep(0.05)
        self.client = client
        return self

    def create_bucket(self, name: str) -> None:
        """Create a bucket (already there is fine)."""
        try:
            self.client.create_bucket(Bucket=name)
        except self.client.exceptions.BucketAlreadyOwnedByYou:
            pass

    def stop(self) -> None:
        """Stop the server (SIGTERM to its process group, then SIGKILL) and delete its log."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
