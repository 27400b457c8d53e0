"""The ``sqlite`` history backend, the default: one file, ``history.db`` under
``--data-dir``, in WAL mode (readers never wait for the writer).

Every call runs whole on one dedicated thread that owns the connection (the standard
library's ``sqlite3``; no driver to install): one event-loop hop per call however many
statements it runs, and a transaction is one function on that thread, so no other
coroutine's statements can interleave with it (a shared async connection such as
aiosqlite's would need a lock around every transaction for that, and costs a hop per
statement). The event loop never waits on SQLite.

Writes are one transaction each, begun with ``BEGIN IMMEDIATE`` (the file's write lock
first, so two processes never deadlock upgrading a read lock); other processes on the
same file wait up to ``busy_timeout_secs`` for it and then fail with
:class:`StorageError`, leaving what was stored untouched. Items are ordered by an
integer sequence (``AUTOINCREMENT``, never reused), so concurrent appends from any
number of processes keep each append's items together, in commit order.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Literal, NamedTuple, TypeVar

from smg.storage.base import Conversation, HistoryStore, ItemPage, Json, StorageError, StoredResponse
from smg.storage.records import dumps, loads, page_of, walk_chain

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

T = TypeVar("T")

# version -> statements taking the schema from version - 1 to it; never edited once released.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE responses (
            id TEXT PRIMARY KEY,
            created_at INTEGER NOT NULL,
            status TEXT NOT NULL,
            previous_response_id TEXT,
            conversation_id TEXT,
            body TEXT NOT NULL,
            input_items TEXT NOT NULL)""",
        "CREATE INDEX responses_conversation ON responses (conversation_id)",
        """CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            created_at INTEGER NOT NULL,
            metadata TEXT NOT NULL)""",
        """CREATE TABLE items (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            item_id TEXT NOT NULL,
            body TEXT NOT NULL,
            UNIQUE (conversation_id, item_id))""",
        "CREATE INDEX items_conversation_seq ON items (conversation_id, seq)",
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)

_RESPONSE_COLUMNS = "id, created_at, body, input_items, previous_response_id, conversation_id"
_CHAIN = f"""
WITH RECURSIVE chain (depth, {_RESPONSE_COLUMNS}) AS (
    SELECT 0, {_RESPONSE_COLUMNS} FROM responses WHERE id = ?
    UNION ALL
    SELECT c.depth + 1, r.id, r.created_at, r.body, r.input_items, r.previous_response_id, r.conversation_id
    FROM chain c JOIN responses r ON r.id = c.previous_response_id
    WHERE c.depth + 1 < ?)
SELECT {_RESPONSE_COLUMNS} FROM chain ORDER BY depth"""
# what chain_context needs: the chain's links walked first, then of each response only its
# status, input items and output (SQLite takes the output out of the body: decoding the
# whole body costs more)
_CONTEXT = """
WITH RECURSIVE chain (depth, id, previous_response_id) AS (
    SELECT 0, id, previous_response_id FROM responses WHERE id = ?
    UNION ALL
    SELECT c.depth + 1, r.id, r.previous_response_id FROM chain c JOIN responses r ON r.id = c.previous_response_id
    WHERE c.depth + 1 < ?)
SELECT r.id, r.previous_response_id, r.status, r.input_items, json_extract(r.body, '$.output')
FROM chain c JOIN responses r ON r.id = c.id ORDER BY c.depth"""
_UPSERT_ITEM = """INSERT INTO items (conversation_id, item_id, body) VALUES (?, ?, ?)
    ON CONFLICT (conversation_id, item_id) DO UPDATE SET body = excluded.body"""


class _Link(NamedTuple):
    id: str
    previous_response_id: str | None
    status: str
    input_items: str
    output: str | None


def _response(row: tuple) -> StoredResponse:
    return StoredResponse(row[0], row[1], loads(row[2]), loads(row[3]), row[4], row[5])


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION` (one transaction; a second process
    starting at the same time waits, then finds it done)."""
    with _transaction(conn):
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        current = row[0] or 0
        if current > SCHEMA_VERSION:
            raise StorageError(f"history.db has schema version {current}, newer than this smg's {SCHEMA_VERSION}")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error."""

    def __init__(self, conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> None:
        self.conn = conn
        self.mode = mode

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute(f"BEGIN {self.mode}")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


class _Thread:
    """The store's one thread: calls run in order; each result comes back to its caller's
    loop with one ``call_soon_threadsafe`` (``run_in_executor`` chains two futures and
    costs about twice the CPU per call)."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="smg-sqlite", daemon=True).start()

    def call(self, fn: Callable[..., T], args: tuple) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._calls.put((loop, fut, fn, args))
        return fut

    def stop(self) -> None:
        self._calls.put(None)

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            loop, fut, fn, args = call
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(_settle, fut, result, error)
            except RuntimeError:  # the caller's loop is closed: nobody waits
                pass
            del call, fut, result, error


def _settle(fut: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if fut.cancelled():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class SqliteStore(HistoryStore):
    name = "sqlite"

    def __init__(self, path: str, *, busy_timeout_secs: float = 5.0) -> None:
        self.path = os.path.abspath(os.path.expanduser(path))
        self.busy_timeout_secs = busy_timeout_secs
        self._conn: sqlite3.Connection | None = None
        self._thread: _Thread | None = None

    @classmethod
    def in_dir(cls, data_dir: str, **kwargs: Any) -> SqliteStore:
        return cls(os.path.join(os.path.expanduser(data_dir), "history.db"), **kwargs)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._thread is None:
            raise StorageError("sqlite history store is not started")
        try:
            return await self._thread.call(fn, args)
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite: {exc}") from exc
        except OSError as exc:
            raise StorageError(f"sqlite: {self.path}: {exc}") from exc

    async def start(self) -> None:
        if self._conn is not None:
            return
        if self._thread is None:
            self._thread = _Thread()
        await self._run(self._open)

    def _open(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_secs, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_secs * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StorageError(f"sqlite: {self.path} cannot use WAL mode (got {mode})")
            # WAL + NORMAL: every commit is atomic and survives a crash of smg; only an OS
            # crash or power loss can drop the last commits (never half of one).
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        if self._thread is None:
            return
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._thread.stop()
        self._thread = None

    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("sqlite history store is not started")
        return self._conn

    # -- responses ---------------------------------------------------------------------

    async def put_response(self, record: StoredResponse, *, if_status: str | None = None) -> bool:
        row = (record.created_at, record.status, record.previous_response_id, record.conversation_id,
               dumps(record.body), dumps(record.input_items), record.id)
        return await self._run(self._put_response, row, if_status)

    def _put_response(self, row: tuple, if_status: str | None) -> bool:
        with _transaction(self._c()) as conn:
            if if_status is None:
                conn.execute(
                    "INSERT OR REPLACE INTO responses (created_at, status, previous_response_id, conversation_id,"
                    " body, input_items, id) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
                return True
            cur = conn.execute(
                "UPDATE responses SET created_at = ?, status = ?, previous_response_id = ?, conversation_id = ?,"
                " body = ?, input_items = ? WHERE id = ? AND status = ?", (*row, if_status))
            return cur.rowcount == 1

    async def get_response(self, response_id: str) -> StoredResponse | None:
        row = await self._run(self._get_response, response_id)
        return _response(row) if row is not None else None

    def _get_response(self, response_id: str) -> tuple | None:
        return self._c().execute(f"SELECT {_RESPONSE_COLUMNS} FROM responses WHERE id = ?", (response_id,)).fetchone()

    async def delete_response(self, response_id: str) -> bool:
        return await self._run(self._delete, "DELETE FROM responses WHERE id = ?", (response_id,))

    def _delete(self, sql: str, args: tuple) -> bool:
        with _transaction(self._c()) as conn:
            return conn.execute(sql, args).rowcount > 0

    async def response_chain(self, response_id: str, limit: int = 1000) -> list[StoredResponse] | None:
        return await self._run(self._chain, response_id, limit)

    def _chain(self, response_id: str, limit: int) -> list[StoredResponse] | None:
        rows = self._c().execute(_CHAIN, (response_id, max(limit, 1))).fetchall()
        return walk_chain(map(_response, rows), limit)  # decoded here, off the event loop

    async def chain_context(self, response_id: str, limit: int = 1000) -> tuple[str, list[Json]] | None:
        return await self._run(self._context, response_id, limit)

    def _context(self, response_id: str, limit: int) -> tuple[str, list[Json]] | None:
        rows = self._c().execute(_CONTEXT, (response_id, max(limit, 1))).fetchall()
        chain = walk_chain(map(_Link._make, rows), limit)
        if chain is None:
            return None
        items: list[Json] = []
        for link in chain:
            items += loads(link.input_items)
            if link.output is not None:
                items += list(loads(link.output) or [])
        return chain[-1].status, items

    # -- conversations -----------------------------------------------------------------

    async def create_conversation(self, conversation: Conversation, items: list[Json]) -> None:
        rows = [(conversation.id, item["id"], dumps(item)) for item in items]
        conv = (conversation.id, conversation.created_at, dumps(conversation.metadata))
        await self._run(self._create_conversation, conv, rows)

    def _create_conversation(self, conv: tuple, rows: list[tuple]) -> None:
        with _transaction(self._c()) as conn:
            conn.execute("DELETE FROM items WHERE conversation_id = ?", (conv[0],))  # an id reused: start over
            conn.execute("INSERT OR REPLACE INTO conversations (id, created_at, metadata) VALUES (?, ?, ?)", conv)
            conn.executemany(_UPSERT_ITEM, rows)

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        row = await self._run(self._get_conversation, conversation_id)
        return Conversation(row[0], row[1], loads(row[2])) if row is not None else None

    def _get_conversation(self, conversation_id: str) -> tuple | None:
        return self._c().execute(
            "SELECT id, created_at, metadata FROM conversations WHERE id = ?", (conversation_id,)).fetchone()

    async def update_conversation(self, conversation_id: str, metadata: dict[str, str]) -> Conversation | None:
        row = await self._run(self._update_conversation, conversation_id, dumps(metadata))
        return Conversation(row[0], row[1], loads(row[2])) if row is not None else None

    def _update_conversation(self, conversation_id: str, metadata: str) -> tuple | None:
        with _transaction(self._c()) as conn:
            return conn.execute("UPDATE conversations SET metadata = ? WHERE id = ? RETURNING id, created_at, metadata",
                                (metadata, conversation_id)).fetchone()

    async def delete_conversation(self, conversation_id: str) -> bool:
        return await self._run(self._delete_conversation, conversation_id)

    def _delete_conversation(self, conversation_id: str) -> bool:
        with _transaction(self._c()) as conn:
            conn.execute("DELETE FROM items WHERE conversation_id = ?", (conversation_id,))
            return conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount > 0

    async def append_items(self, conversation_id: str, items: list[Json]) -> bool:
        rows = [(conversation_id, item["id"], dumps(item)) for item in items]
        return await self._run(self._append, conversation_id, rows)

    def _append(self, conversation_id: str, rows: list[tuple]) -> bool:
        with _transaction(self._c()) as conn:
            if conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone() is None:
                return False
            conn.executemany(_UPSERT_ITEM, rows)
            return True

    async def list_items(
        self, conversation_id: str, *, limit: int = 20, order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
    ) -> ItemPage | None:
        bodies = await self._run(self._list, conversation_id, limit, order == "asc", after)
        return page_of(bodies, limit) if bodies is not None else None

    def _list(self, conversation_id: str, limit: int, asc: bool, after: str | None) -> list[str] | None:
        with _transaction(self._c(), "DEFERRED") as conn:  # one snapshot for both reads
            if conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone() is None:
                return None
            cmp, direction = (">", "ASC") if asc else ("<", "DESC")
            if after is None:
                sql = f"SELECT body FROM items WHERE conversation_id = ? ORDER BY seq {direction} LIMIT ?"
                args: tuple = (conversation_id, max(limit, 0) + 1)
            else:
                row = conn.execute("SELECT seq FROM items WHERE conversation_id = ? AND item_id = ?",
                                   (conversation_id, after)).fetchone()
                if row is None:
                    return []
                sql = (f"SELECT body FROM items WHERE conversation_id = ? AND seq {cmp} ? "
                       f"ORDER BY seq {direction} LIMIT ?")
                args = (conversation_id, row[0], max(limit, 0) + 1)
            return [r[0] for r in conn.execute(sql, args)]

    async def get_item(self, conversation_id: str, item_id: str) -> Json | None:
        body = await self._run(self._get_item, conversation_id, item_id)
        return loads(body) if body is not None else None

    def _get_item(self, conversation_id: str, item_id: str) -> str | None:
        row = self._c().execute("SELECT body FROM items WHERE conversation_id = ? AND item_id = ?",
                                (conversation_id, item_id)).fetchone()
        return row[0] if row is not None else None

    async def delete_item(self, conversation_id: str, item_id: str) -> bool:
        return await self._run(self._delete, "DELETE FROM items WHERE conversation_id = ? AND item_id = ?",
                               (conversation_id, item_id))
