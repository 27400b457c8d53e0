"""The ``postgres`` history backend: psycopg 3 (async) with a
``psycopg_pool.AsyncConnectionPool`` of at most ``--postgres-pool-max`` connections.

Tables (``smg_`` prefixed, JSONB records) are created and migrated on start under a
schema version table, inside one transaction holding an advisory lock, so replicas
starting together migrate once. Each call is bounded by ``--postgres-op-timeout-secs``
(the pool wait, the statements and the whole call); past it, or on any database error,
it raises :class:`StorageError` and its transaction is rolled back, so nothing half-done
stays. An append locks its conversation's row (``SELECT ... FOR UPDATE``) and inserts its
items with the next values of one identity column: appends to one conversation from any
connection, process or replica run one after another, so none is lost and each keeps
its items together, in commit order.

JSONB cannot hold the character U+0000: a record with one in a string is refused
(StorageError), as PostgreSQL refuses it.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import psycopg
import psycopg_pool

from smg.storage.base import Conversation, HistoryStore, ItemPage, Json, StorageError, StoredResponse
from smg.storage.records import dumps, loads, page_of, walk_chain

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

T = TypeVar("T")

IDLE_CHECK_SECS = 1.0
MIGRATION_LOCK = 0x736D67_0016  # pg_advisory_xact_lock key: "smg", issue 16

# version -> statements taking the schema from version - 1 to it; never edited once released.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE smg_responses (
            id TEXT PRIMARY KEY,
            created_at BIGINT NOT NULL,
            status TEXT NOT NULL,
            previous_response_id TEXT,
            conversation_id TEXT,
            body JSONB NOT NULL,
            input_items JSONB NOT NULL)""",
        "CREATE INDEX smg_responses_conversation ON smg_responses (conversation_id)",
        """CREATE TABLE smg_conversations (
            id TEXT PRIMARY KEY,
            created_at BIGINT NOT NULL,
            metadata JSONB NOT NULL)""",
        """CREATE TABLE smg_conversation_items (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES smg_conversations (id) ON DELETE CASCADE,
            item_id TEXT NOT NULL,
            body JSONB NOT NULL,
            UNIQUE (conversation_id, item_id))""",
        "CREATE INDEX smg_conversation_items_seq ON smg_conversation_items (conversation_id, seq)",
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)

_COLUMNS = "id, created_at, body::text, input_items::text, previous_response_id, conversation_id"
_CHAIN = """
WITH RECURSIVE chain (depth, id, created_at, body, input_items, previous_response_id, conversation_id) AS (
    SELECT 0, id, created_at, body, input_items, previous_response_id, conversation_id
    FROM smg_responses WHERE id = %s
    UNION ALL
    SELECT c.depth + 1, r.id, r.created_at, r.body, r.input_items, r.previous_response_id, r.conversation_id
    FROM chain c JOIN smg_responses r ON r.id = c.previous_response_id
    WHERE c.depth + 1 < %s)
SELECT id, created_at, body::text, input_items::text, previous_response_id, conversation_id
FROM chain ORDER BY depth"""
_UPSERT_ITEM = """INSERT INTO smg_conversation_items (conversation_id, item_id, body) VALUES (%s, %s, %s::jsonb)
    ON CONFLICT (conversation_id, item_id) DO UPDATE SET body = EXCLUDED.body"""
_CONVERSATION = "SELECT id, created_at, metadata::text FROM smg_conversations WHERE id = %s"


def _response(row: tuple) -> StoredResponse:
    return StoredResponse(row[0], row[1], loads(row[2]), loads(row[3]), row[4], row[5])


def _conversation(row: tuple | None) -> Conversation | None:
    return Conversation(row[0], row[1], loads(row[2])) if row is not None else None


async def migrate(conn: psycopg.AsyncConnection) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS smg_schema_version (version INTEGER NOT NULL)")
        cur = await conn.execute("SELECT max(version) FROM smg_schema_version")
        current = (await cur.fetchone())[0] or 0
        if current > SCHEMA_VERSION:
            raise StorageError(f"postgres schema version {current} is newer than this smg's {SCHEMA_VERSION}")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                await conn.execute(statement)
            await conn.execute("INSERT INTO smg_schema_version (version) VALUES (%s)", (version,))


class PostgresStore(HistoryStore):
    name = "postgres"

    def __init__(self, url: str, *, pool_max: int = 16, op_timeout_secs: float = 5.0) -> None:
        if not url:
            raise ValueError("the postgres history backend needs --postgres-db-url")
        self.url = url
        self.pool_max = max(1, pool_max)
        self.op_timeout = op_timeout_secs
        self._pool: psycopg_pool.AsyncConnectionPool | None = None
        self._last_used: weakref.WeakKeyDictionary[psycopg.AsyncConnection, float] = weakref.WeakKeyDictionary()

    async def start(self) -> None:
        if self._pool is not None:
            return
        ms = max(1, int(self.op_timeout * 1000))
        self._pool = psycopg_pool.AsyncConnectionPool(
            self.url, min_size=1, max_size=self.pool_max, open=False, timeout=self.op_timeout,
            check=self._check, reset=self._returned,
            # The pool retries a failed connect with a doubling delay; giving up after a
            # few op timeouts lets the next call start afresh, so a database back from a
            # restart is used again within seconds, not minutes.
            reconnect_timeout=max(2.0, 2 * self.op_timeout),
            kwargs={"autocommit": True, "connect_timeout": max(1, int(self.op_timeout + 0.999)),
                    "options": f"-c statement_timeout={ms} -c lock_timeout={ms}"},
        )
        try:
            await asyncio.wait_for(self._pool.open(wait=True, timeout=self.op_timeout), self.op_timeout)
            await self._call(migrate)
        except (psycopg.Error, psycopg_pool.PoolTimeout, asyncio.TimeoutError, OSError) as exc:
            await self.close()
            raise StorageError(f"postgres: cannot start: {exc}") from exc

    async def _check(self, conn: psycopg.AsyncConnection) -> None:
        """A connection idle for a while is checked before use (one round trip), so one
        broken by a database restart is replaced rather than failing a call; one used
        within the last second (a busy pool) goes out unchecked."""
        if time.monotonic() - self._last_used.get(conn, 0.0) > IDLE_CHECK_SECS:
            await psycopg_pool.AsyncConnectionPool.check_connection(conn)

    async def _returned(self, conn: psycopg.AsyncConnection) -> None:
        self._last_used[conn] = time.monotonic()

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close(timeout=self.op_timeout)

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``fn(conn, *args)`` on a pooled connection, bounded by the op timeout."""
        if self._pool is None:
            raise StorageError("postgres history store is not started")
        pool = self._pool

        async def op() -> T:
            async with pool.connection() as conn:
                return await fn(conn, *args)

        try:
            return await asyncio.wait_for(op(), self.op_timeout)
        except asyncio.TimeoutError:
            raise StorageError(f"postgres: no answer in {self.op_timeout} s") from None
        except psycopg_pool.PoolTimeout as exc:
            raise StorageError(f"postgres: no connection in {self.op_timeout} s: {exc}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"postgres: {exc}") from exc

    # -- responses ---------------------------------------------------------------------

    async def put_response(self, record: StoredResponse, *, if_status: str | None = None) -> bool:
        row = (record.created_at, record.status, record.previous_response_id, record.conversation_id,
               dumps(record.body), dumps(record.input_items), record.id)
        return await self._call(_put_response, row, if_status)

    async def get_response(self, response_id: str) -> StoredResponse | None:
        row = await self._call(_fetchone, f"SELECT {_COLUMNS} FROM smg_responses WHERE id = %s", (response_id,))
        return _response(row) if row is not None else None

    async def delete_response(self, response_id: str) -> bool:
        return await self._call(_modified, "DELETE FROM smg_responses WHERE id = %s", (response_id,))

    async def response_chain(self, response_id: str, limit: int = 1000) -> list[StoredResponse] | None:
        rows = await self._call(_fetchall, _CHAIN, (response_id, max(limit, 1)))
        return walk_chain(map(_response, rows), limit)

    # -- conversations -----------------------------------------------------------------

    async def create_conversation(self, conversation: Conversation, items: list[Json]) -> None:
        rows = [(conversation.id, item["id"], dumps(item)) for item in items]
        conv = (conversation.id, conversation.created_at, dumps(conversation.metadata))
        await self._call(_create_conversation, conv, rows)

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        return _conversation(await self._call(_fetchone, _CONVERSATION, (conversation_id,)))

    async def update_conversation(self, conversation_id: str, metadata: dict[str, str]) -> Conversation | None:
        row = await self._call(
            _fetchone, "UPDATE smg_conversations SET metadata = %s::jsonb WHERE id = %s"
            " RETURNING id, created_at, metadata::text", (dumps(metadata), conversation_id))
        return _conversation(row)

    async def delete_conversation(self, conversation_id: str) -> bool:
        # Its items go with it (ON DELETE CASCADE), in the same statement.
        return await self._call(_modified, "DELETE FROM smg_conversations WHERE id = %s", (conversation_id,))

    async def append_items(self, conversation_id: str, items: list[Json]) -> bool:
        rows = [(conversation_id, item["id"], dumps(item)) for item in items]
        return await self._call(_append, conversation_id, rows)

    async def list_items(
        self, conversation_id: str, *, limit: int = 20, order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
    ) -> ItemPage | None:
        bodies = await self._call(_list, conversation_id, max(limit, 0), order == "asc", after)
        return page_of(bodies, limit) if bodies is not None else None

    async def get_item(self, conversation_id: str, item_id: str) -> Json | None:
        row = await self._call(
            _fetchone, "SELECT body::text FROM smg_conversation_items WHERE conversation_id = %s AND item_id = %s",
            (conversation_id, item_id))
        return loads(row[0]) if row is not None else None

    async def delete_item(self, conversation_id: str, item_id: str) -> bool:
        return await self._call(
            _modified, "DELETE FROM smg_conversation_items WHERE conversation_id = %s AND item_id = %s",
            (conversation_id, item_id))


# -- the calls, each on one connection (autocommit: one statement is one transaction) ----

async def _fetchone(conn: psycopg.AsyncConnection, sql: str, args: tuple) -> tuple | None:
    cur = await conn.execute(sql, args)
    return await cur.fetchone()


async def _fetchall(conn: psycopg.AsyncConnection, sql: str, args: tuple) -> list[tuple]:
    cur = await conn.execute(sql, args)
    return await cur.fetchall()


async def _modified(conn: psycopg.AsyncConnection, sql: str, args: tuple) -> bool:
    cur = await conn.execute(sql, args)
    return cur.rowcount > 0


async def _put_response(conn: psycopg.AsyncConnection, row: tuple, if_status: str | None) -> bool:
    if if_status is None:
        await conn.execute(
            "INSERT INTO smg_responses (created_at, status, previous_response_id, conversation_id, body, input_items,"
            " id) VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb, %s) ON CONFLICT (id) DO UPDATE SET"
            " created_at = EXCLUDED.created_at, status = EXCLUDED.status,"
            " previous_response_id = EXCLUDED.previous_response_id, conversation_id = EXCLUDED.conversation_id,"
            " body = EXCLUDED.body, input_items = EXCLUDED.input_items", row)
        return True
    cur = await conn.execute(
        "UPDATE smg_responses SET created_at = %s, status = %s, previous_response_id = %s, conversation_id = %s,"
        " body = %s::jsonb, input_items = %s::jsonb WHERE id = %s AND status = %s", (*row, if_status))
    return cur.rowcount == 1


async def _create_conversation(conn: psycopg.AsyncConnection, conv: tuple, rows: list[tuple]) -> None:
    async with conn.transaction():
        await conn.execute("DELETE FROM smg_conversations WHERE id = %s", (conv[0],))  # an id reused: start over
        await conn.execute("INSERT INTO smg_conversations (id, created_at, metadata) VALUES (%s, %s, %s::jsonb)", conv)
        if rows:
            async with conn.cursor() as cur:
                await cur.executemany(_UPSERT_ITEM, rows)


async def _append(conn: psycopg.AsyncConnection, conversation_id: str, rows: list[tuple]) -> bool:
    async with conn.transaction():
        cur = await conn.execute("SELECT 1 FROM smg_conversations WHERE id = %s FOR UPDATE", (conversation_id,))
        if await cur.fetchone() is None:
            return False
        if rows:
            await cur.executemany(_UPSERT_ITEM, rows)
        return True


async def _list(conn: psycopg.AsyncConnection, conversation_id: str, limit: int, asc: bool,
                after: str | None) -> list[str] | None:
    # One statement (one snapshot, one round trip): a marker row when the conversation
    # exists, then the page. An unknown ``after`` compares with NULL: no rows.
    cmp, direction = (">", "ASC") if asc else ("<", "DESC")
    cur = await conn.execute(
        "SELECT 0 AS part, 0::bigint AS seq, NULL AS body FROM smg_conversations WHERE id = %(c)s"
        " UNION ALL (SELECT 1, seq, body::text FROM smg_conversation_items WHERE conversation_id = %(c)s"
        f" AND (%(after)s::text IS NULL OR seq {cmp} (SELECT seq FROM smg_conversation_items"
        "      WHERE conversation_id = %(c)s AND item_id = %(after)s::text))"
        f" ORDER BY seq {direction} LIMIT %(n)s)"
        f" ORDER BY part, seq {direction}",
        {"c": conversation_id, "after": after, "n": limit + 1})
    rows = await cur.fetchall()
    if not rows or rows[0][0] != 0:
        return None
    return [r[2] for r in rows[1:]]
