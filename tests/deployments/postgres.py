"""A throwaway PostgreSQL (Debian's ``postgresql`` package) on 127.0.0.1, for the distributed-setup tests.

PostgreSQL refuses to run as root: as root, every server command runs as the ``postgres`` system user via
``runuser``, in a temporary directory that user owns. Stopped by the postmaster's PID (SIGINT: fast shutdown).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from prefect_model_registry.flows.dev.server import free_port
from tests.reaper import guard

USER = "pmr"
PASSWORD = "pmr-test-db-password"  # a throwaway password for a loopback test database, not a credential
DATABASE = "prefect"


def pg_bindir() -> Path | None:
    """The newest installed PostgreSQL server's ``bin`` directory, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path else None


def unavailable() -> str | None:
    """Why a local PostgreSQL cannot be started here (None if it can)."""
    if pg_bindir() is None:
        return "PostgreSQL is not installed (apt-get install postgresql; .ci/system-deps does it)"
    if os.geteuid() == 0 and (shutil.which("runuser") is None or _uid("postgres") is None):
        return "running as root without runuser or a postgres user to run PostgreSQL as"
    return None


def _uid(user: str) -> int | None:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


class LocalPostgres:
    """``initdb`` + ``postgres`` in a temporary directory, listening on 127.0.0.1 only (no Unix socket)."""

    def __init__(self) -> None:
        self.bindir = pg_bindir()
        if self.bindir is None:
            raise RuntimeError(unavailable())
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="pmr-pg-"))
        self.data = self.root / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self._as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        """The SQLAlchemy URL Prefect takes (``PREFECT_API_DATABASE_CONNECTION_URL``)."""
        return f"postgresql+asyncpg://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def _cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        return [*prefix, *args]

    def start(self, timeout: float = 60.0) -> LocalPostgres:
        """Create the cluster and the database, start the server and wait until it accepts connections."""
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._as_postgres:
            owner = pwd.getpwnam("postgres")
            for path in (self.root, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        log = self.root / "postgres.log"
        subprocess.run(
            self._cmd(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
        )
        cmd = self._cmd(
            str(self.bindir / "postgres"),
            "-D",
            str(self.data),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            "",  # no Unix socket: loopback TCP only
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=100",
        )
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        guard(self.proc.pid)  # dies with the test process, even if that is killed
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited early:\n{self.log_tail()}")
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-q"],
                env=env,
                check=False,
            )
            if ready.returncode == 0:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"postgres not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.2)
        subprocess.run(
            [str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE],
            env=env,
            check=True,
            capture_output=True,
        )
        return self

    def sql(self, query: str) -> str:
        """Run one query with ``psql`` as the cluster's superuser; its rows, unaligned."""
        where = ("-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", DATABASE)
        out = subprocess.run(
            [str(self.bindir / "psql"), *where, "-tA", "-v", "ON_ERROR_STOP=1", "-c", query],
            env={**os.environ, "PGPASSWORD": PASSWORD},
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server log."""
        path = self.root / "postgres.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def postmaster_pid(self) -> int | None:
        """The postmaster's PID from ``postmaster.pid`` (the wrapper ``runuser`` has its own)."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster), SIGKILL to the process group after 30 s; delete the data."""
        if self.proc is not None and self.proc.poll() is None:
            pid = self.postmaster_pid()
            try:
                os.kill(pid or self.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
