"""Fixtures for the history-store tests: every backend, each on a fresh, empty target
(a memory store, a sqlite file in tmp_path, a new PostgreSQL database, a flushed Redis db
on the private servers of tests/storage_servers.py)."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from smg.config.history import HistorySettings
from smg.storage import HistoryStore, open_store
from tests.storage_servers import postgres_server, postgres_url, redis_server, redis_url  # noqa: F401

ALL = ("memory", "sqlite", "postgres", "redis")
PERSISTENT = ("sqlite", "postgres", "redis")


@dataclass(frozen=True)
class Backend:
    """One backend and where its data lives; ``make()`` opens another store on the same
    data (another connection pool: what another process or replica would see)."""

    kind: str
    target: str  # sqlite: the data directory; postgres/redis: the URL; memory: ""

    def settings(self, op_timeout: float = 5.0) -> HistorySettings:
        return HistorySettings(
            history_backend=self.kind, data_dir=self.target if self.kind == "sqlite" else "/nonexistent",
            postgres_db_url=self.target if self.kind == "postgres" else None,
            redis_url=self.target if self.kind == "redis" else None,
            postgres_op_timeout_secs=op_timeout, redis_op_timeout_secs=op_timeout, postgres_pool_max=4,
            redis_pool_max=4,
        )

    def make(self, op_timeout: float = 5.0) -> HistoryStore:
        return open_store(self.settings(op_timeout))


def _backend(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Backend:
    kind = request.param
    if kind == "sqlite":
        return Backend(kind, str(tmp_path / "data"))
    if kind in ("postgres", "redis"):
        return Backend(kind, request.getfixturevalue(f"{kind}_url"))
    return Backend(kind, "")


@pytest.fixture(params=ALL)
def backend(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Backend:
    return _backend(request, tmp_path)


@pytest.fixture(params=PERSISTENT)
def persistent_backend(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Backend:
    return _backend(request, tmp_path)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[HistoryStore]:
    s = backend.make()
    await s.start()
    yield s
    await s.close()
