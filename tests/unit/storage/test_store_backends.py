"""What each persistent backend promises beyond the shared contract: open_store's wiring,
the sqlite file (where, WAL, schema version), PostgreSQL's schema and all-or-nothing
appends, Redis TTLs."""

from __future__ import annotations

import asyncio
import os
import pathlib
import sqlite3

import psycopg
import pytest
import redis

from smg.config.history import HistorySettings
from smg.storage import Conversation, StorageError, open_store
from smg.storage.memory import MemoryStore, NoStore
from smg.storage.postgres import SCHEMA_VERSION as PG_VERSION
from smg.storage.postgres import PostgresStore
from smg.storage.redis import RedisStore
from smg.storage.sqlite import SCHEMA_VERSION as SQLITE_VERSION
from smg.storage.sqlite import SqliteStore
from tests.unit.storage.test_store_conformance import item, response


def test_open_store_builds_the_named_backend(tmp_path: pathlib.Path) -> None:
    assert type(open_store(HistorySettings(history_backend="memory"))) is MemoryStore
    assert type(open_store(HistorySettings(history_backend="none"))) is NoStore
    s = open_store(HistorySettings(history_backend="sqlite", data_dir=str(tmp_path / "d")))
    assert isinstance(s, SqliteStore) and s.path == str(tmp_path / "d" / "history.db")
    pg = open_store(HistorySettings(history_backend="postgres", postgres_db_url="postgresql://h/db",
                                    postgres_pool_max=3, postgres_op_timeout_secs=2.5))
    assert isinstance(pg, PostgresStore) and (pg.pool_max, pg.op_timeout) == (3, 2.5)
    r = open_store(HistorySettings(history_backend="redis", redis_url="redis://h:1/2", redis_pool_max=5,
                                   redis_retention_days=2, redis_op_timeout_secs=1.5))
    assert isinstance(r, RedisStore) and (r.pool_max, r.ttl, r.op_timeout) == (5, 2 * 86400, 1.5)
    assert open_store(HistorySettings(history_backend="redis", redis_url="redis://h", redis_retention_days=-1)).ttl == 0
    with pytest.raises(ValueError, match="--postgres-db-url"):
        open_store(HistorySettings(history_backend="postgres"))
    with pytest.raises(ValueError, match="--redis-url"):
        open_store(HistorySettings(history_backend="redis"))


async def test_sqlite_file_under_data_dir_in_wal_mode(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    s = open_store(HistorySettings(history_backend="sqlite", data_dir="~/a/b"))
    await s.start()
    await s.create_conversation(Conversation("conv_1", 1, {}), [item("i1")])
    await s.close()
    db = tmp_path / "a" / "b" / "history.db"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SQLITE_VERSION,)]
        assert conn.execute("SELECT item_id FROM items").fetchall() == [("i1",)]
    finally:
        conn.close()


async def test_sqlite_stores_starting_together_migrate_once(tmp_path: pathlib.Path) -> None:
    stores = [SqliteStore.in_dir(str(tmp_path)) for _ in range(4)]
    await asyncio.gather(*(s.start() for s in stores))
    await stores[0].create_conversation(Conversation("conv_1", 1, {}), [])
    assert all(await asyncio.gather(*(s.append_items("conv_1", [item(f"i{n}")]) for n, s in enumerate(stores))))
    assert len((await stores[3].list_items("conv_1")).items) == 4
    for s in stores:
        await s.close()
    conn = sqlite3.connect(tmp_path / "history.db")
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SQLITE_VERSION,)]
    conn.close()


async def test_sqlite_newer_schema_is_refused(tmp_path: pathlib.Path) -> None:
    conn = sqlite3.connect(tmp_path / "history.db")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (?)", (SQLITE_VERSION + 1,))
    conn.commit()
    conn.close()
    s = SqliteStore.in_dir(str(tmp_path))
    with pytest.raises(StorageError, match="newer"):
        await s.start()
    await s.close()


async def test_sqlite_not_started_is_a_storage_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(StorageError, match="not started"):
        await SqliteStore.in_dir(str(tmp_path)).get_response("r")


async def test_postgres_schema_and_newer_version(postgres_url: str) -> None:
    s = PostgresStore(postgres_url)
    await s.start()
    await s.close()
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        cur = await conn.execute("SELECT version FROM smg_schema_version")
        assert await cur.fetchall() == [(PG_VERSION,)]
        cur = await conn.execute("SELECT data_type FROM information_schema.columns"
                                 " WHERE table_name = 'smg_conversation_items' AND column_name = 'body'")
        assert await cur.fetchall() == [("jsonb",)]
        await conn.execute("INSERT INTO smg_schema_version VALUES (%s)", (PG_VERSION + 1,))
    with pytest.raises(StorageError, match="newer"):
        await PostgresStore(postgres_url).start()


async def test_postgres_stores_starting_together_migrate_once(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url, pool_max=2) for _ in range(3)]
    await asyncio.gather(*(s.start() for s in stores))
    for s in stores:
        await s.close()
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        cur = await conn.execute("SELECT version FROM smg_schema_version")
        assert await cur.fetchall() == [(PG_VERSION,)]


async def test_postgres_failed_append_leaves_nothing(postgres_url: str) -> None:
    # PostgreSQL refuses U+0000 in JSONB: the second item fails inside the transaction,
    # after the first was inserted; neither stays.
    s = PostgresStore(postgres_url)
    await s.start()
    try:
        await s.create_conversation(Conversation("conv_a", 1, {}), [item("a0")])
        bad = item("a2")
        bad["content"][0]["text"] = "nul \x00 here"
        with pytest.raises(StorageError):
            await s.append_items("conv_a", [item("a1"), bad])
        with pytest.raises(StorageError):
            await s.create_conversation(Conversation("conv_b", 1, {}), [item("b1"), bad])
        assert [i["id"] for i in (await s.list_items("conv_a", order="asc")).items] == ["a0"]
        assert await s.get_conversation("conv_b") is None
        assert await s.append_items("conv_a", [item("a1")])
    finally:
        await s.close()


async def test_postgres_pool_max_bounds_connections(postgres_url: str) -> None:
    s = PostgresStore(postgres_url, pool_max=2)
    await s.start()
    try:
        await s.create_conversation(Conversation("conv_p", 1, {}), [])
        assert all(await asyncio.gather(*(s.append_items("conv_p", [item(f"i{n}")]) for n in range(30))))
        dbname = postgres_url.rsplit("/", 1)[1]
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            cur = await conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                                     " AND pid <> pg_backend_pid()", (dbname,))
            assert (await cur.fetchone())[0] <= 2
    finally:
        await s.close()


def _ttls(url: str) -> dict[str, int]:
    client = redis.Redis.from_url(url)
    try:
        return {k.decode(): client.ttl(k) for k in client.keys("*")}
    finally:
        client.close()


def _shorten(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        for key in client.keys("*"):
            client.expire(key, 100)
    finally:
        client.close()


async def test_redis_keys_expire_after_retention_and_writes_refresh_it(redis_url: str) -> None:
    s = RedisStore(redis_url, retention_days=1)
    await s.start()
    try:
        await s.put_response(response("resp_t"))
        await s.create_conversation(Conversation("conv_t", 1, {}), [item("t1")])
        ttls = _ttls(redis_url)
        conv_keys = {"smg:conv:{conv_t}", "smg:conv:{conv_t}:order", "smg:conv:{conv_t}:items"}
        assert set(ttls) == {"smg:resp:resp_t", *conv_keys}
        assert all(86400 - 60 < t <= 86400 for t in ttls.values()), ttls
        fresh = lambda: {k for k, t in _ttls(redis_url).items() if t > 86400 - 60}  # noqa: E731
        for write, refreshed in [
            (lambda: s.append_items("conv_t", [item("t2")]), conv_keys),
            (lambda: s.update_conversation("conv_t", {"a": "b"}), conv_keys),
            (lambda: s.put_response(response("resp_t", status="incomplete")), {"smg:resp:resp_t"}),
        ]:
            _shorten(redis_url)
            await write()
            assert fresh() == refreshed
    finally:
        await s.close()


async def test_redis_retention_forever(redis_url: str) -> None:
    s = RedisStore(redis_url, retention_days=1)
    await s.start()
    await s.put_response(response("resp_f"))
    await s.create_conversation(Conversation("conv_f", 1, {}), [item("f1")])
    await s.close()
    assert all(t > 0 for t in _ttls(redis_url).values())
    s = RedisStore(redis_url, retention_days=-1)
    await s.start()
    try:  # written again under -1: kept for ever
        await s.put_response(response("resp_f"))
        await s.append_items("conv_f", [item("f2")])
        ttls = _ttls(redis_url)
        assert len(ttls) == 4 and set(ttls.values()) == {-1}
    finally:
        await s.close()


async def test_redis_write_past_its_deadline_is_refused(redis_url: str) -> None:
    s = RedisStore(redis_url)
    await s.start()
    try:
        await s.create_conversation(Conversation("conv_d", 1, {}), [])
        late = s._add_args("append", 0, "", [item("late")])
        late[0] = 1  # a deadline long past, as a stalled server would see it
        with pytest.raises(redis.exceptions.ResponseError, match="deadline"):
            await s._add(keys=["smg:conv:{conv_d}", "smg:conv:{conv_d}:order", "smg:conv:{conv_d}:items"],
                         args=late)
        assert (await s.list_items("conv_d")).items == []
    finally:
        await s.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="the postgres-as-postgres-user path is for root")
def test_postgres_server_runs_as_the_postgres_user(postgres_server) -> None:  # noqa: ANN001
    import pwd

    assert pwd.getpwuid(os.stat(postgres_server.datadir).st_uid).pw_name == "postgres"


def test_a_missing_server_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.storage_servers import missing

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y postgresql redis-server"):
        missing("redis-server not found")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="redis-server not found"):
        missing("redis-server not found")


async def test_each_test_gets_an_empty_database(postgres_url: str, redis_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert (await cur.fetchone())[0] == 0
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
    finally:
        client.close()


async def test_postgres_restart_while_idle_fails_no_call(postgres_server, postgres_url: str,  # noqa: ANN001
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import smg.storage.postgres as pg

    monkeypatch.setattr(pg, "IDLE_CHECK_SECS", 0.0)  # every connection counts as idle
    s = PostgresStore(postgres_url, pool_max=2)
    await s.start()
    try:
        await s.put_response(response("resp_i"))
        postgres_server.stop()
        postgres_server.start()
        assert await s.get_response("resp_i") == response("resp_i")  # a stale connection is not used
    finally:
        postgres_server.start()
        await s.close()


async def test_redis_restart_fails_no_read(redis_server, redis_url: str) -> None:  # noqa: ANN001
    s = RedisStore(redis_url, pool_max=2)
    await s.start()
    try:
        await s.create_conversation(Conversation("conv_r", 1, {}), [item("r1")])
        redis_server.stop()  # no persistence here: it comes back empty, every pooled connection broken
        redis_server.start()
        assert await s.get_conversation("conv_r") is None
        assert await s.list_items("conv_r") is None
        await s.create_conversation(Conversation("conv_r", 2, {}), [item("r2")])
        assert await s.get_item("conv_r", "r2") == item("r2")
    finally:
        redis_server.start()
        await s.close()
