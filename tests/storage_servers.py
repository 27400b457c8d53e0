"""Private PostgreSQL and Redis servers for the storage tests, from the system packages
(Debian ``postgresql``, ``redis-server``), each in a temporary directory on loopback.

Use the pytest fixtures (a conftest does ``from tests.storage_servers import *`` or names
them): ``postgres_url`` / ``redis_url`` give each test a fresh, empty database (a new
PostgreSQL database, a flushed Redis db index) on one server per test session;
``postgres_server`` / ``redis_server`` are those servers (``.stop()`` / ``.start()`` to
test an outage; the data directory survives). Whichever conftests import the fixtures,
one server of each kind runs per process, stopped when the last session fixture ends
(and at exit).

A missing binary skips with the reason, except in CI (``CI=true``), where it fails.
PostgreSQL refuses to run as root: as root, ``initdb`` and ``postgres`` run as the
``postgres`` user the package creates (``runuser``).
"""

from __future__ import annotations

import atexit
import glob
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

__all__ = [
    "PostgresServer", "RedisServer", "missing", "postgres_server", "postgres_url", "redis_server", "redis_url",
]

START_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing(what: str) -> None:
    """Skip the test for want of ``what``, or fail it in CI."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} (CI installs it: apt-get install -y postgresql redis-server)", pytrace=False)
    pytest.skip(f"{what} (apt-get install -y postgresql redis-server)")


def _wait_port(port: int, proc: subprocess.Popen, what: str, log: pathlib.Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} in {START_TIMEOUT:.0f} s")


def _die_with_parent(sig: int):  # noqa: ANN202
    """A preexec_fn: the server gets ``sig`` when the test process dies, however it dies
    (Linux), so a killed test run leaves no server behind. Only from the main thread: the
    signal comes when the thread that started the server ends."""

    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    import ctypes

    prctl = ctypes.CDLL(None).prctl  # looked up here: the child only calls it

    def preexec() -> None:
        prctl(1, sig)  # PR_SET_PDEATHSIG

    return preexec


def _stop(proc: subprocess.Popen | None, sig: int) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


class PostgresServer:
    """One private PostgreSQL cluster (trust auth, 127.0.0.1 and a unix socket in its
    directory, fsync off: test data only)."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
        if not bins and shutil.which("postgres") is None:
            raise FileNotFoundError("PostgreSQL server binaries (postgres, initdb) not found")
        self.bindir = pathlib.Path(bins[-1]).parent if bins else pathlib.Path(shutil.which("postgres")).parent
        # As root, run as the package's postgres user (directly, not under runuser, so
        # that signals reach the server itself), in a directory it can reach.
        self._as: dict = {}
        tmp = None
        if os.geteuid() == 0:
            import pwd

            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise FileNotFoundError("no 'postgres' user to run PostgreSQL as (root cannot)") from None
            self._as = {"user": "postgres", "group": "postgres", "extra_groups": []}
            tmp = "/tmp" if os.path.isdir("/tmp") else None
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="smg-pg-", dir=tmp))
        self.datadir = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self._dbs = 0
        if self._as:
            shutil.chown(self.root, "postgres", "postgres")
        done = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "postgres",
             "-E", "UTF8", "--no-sync"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.root, **self._as,
        )
        if done.returncode != 0:
            shutil.rmtree(self.root, ignore_errors=True)
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.decode(errors='replace')[-2000:]}")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        logf = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        if self._as:
            shutil.chown(self.log, "postgres", "postgres")
        self.proc = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port),
             "-h", "127.0.0.1", "-k", str(self.root), "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root,
            preexec_fn=_die_with_parent(signal.SIGINT), **self._as,
        )
        logf.close()
        _wait_port(self.port, self.proc, "postgres", self.log)
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # listening is not accepting queries yet (recovery, start-up)
            ok = subprocess.run([str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)])
            if ok.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("postgres did not become ready")
            time.sleep(0.05)

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT)  # fast shutdown

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        self._dbs += 1
        name = f"t{os.getpid()}_{self._dbs}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """One private redis-server on 127.0.0.1 (no persistence, 256 db indexes)."""

    DATABASES = 256

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
        )
        if self.binary is None:
            raise FileNotFoundError("redis-server not found")
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="smg-redis-"))
        self.log = self.root / "redis.log"
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self._next = 0

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.root), "--databases", str(self.DATABASES), "--protected-mode", "yes"],
                stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent(signal.SIGTERM),
            )
        _wait_port(self.port, self.proc, "redis-server", self.log)

    def stop(self) -> None:
        self.resume()
        _stop(self.proc, signal.SIGTERM)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open and get no answer."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def fresh_url(self) -> str:
        """The URL of an emptied db index (indexes are reused round-robin)."""
        import redis

        db = self._next % self.DATABASES
        self._next += 1
        client = redis.Redis(host="127.0.0.1", port=self.port, db=db)
        try:
            client.flushdb()
        finally:
            client.close()
        return self.url(db)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# One server of each kind per process, shared by every conftest that imports the fixtures.
_servers: dict[str, object] = {}
_users: dict[str, int] = {}


def _acquire(kind: str, factory: type) -> object:
    server = _servers.get(kind)
    if server is None:
        try:
            server = factory()
        except FileNotFoundError as exc:
            missing(str(exc))
        try:
            server.start()
        except BaseException:
            server.cleanup()
            raise
        _servers[kind] = server
        atexit.register(server.cleanup)
    else:
        server.start()  # a test that stopped it and failed before restarting
    _users[kind] = _users.get(kind, 0) + 1
    return server


def _release(kind: str) -> None:
    _users[kind] -= 1
    if _users[kind] == 0:
        server = _servers.pop(kind)
        server.cleanup()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = _acquire("postgres", PostgresServer)
    yield server  # type: ignore[misc]
    _release("postgres")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = _acquire("redis", RedisServer)
    yield server  # type: ignore[misc]
    _release("redis")


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh empty database on the session's PostgreSQL server (dropped afterwards)."""
    postgres_server.start()
    url = postgres_server.create_database()
    yield url
    postgres_server.start()
    postgres_server.drop_database(url)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A flushed db index on the session's Redis server."""
    redis_server.start()
    yield redis_server.fresh_url()
