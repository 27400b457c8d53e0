"""What the history must survive: many concurrent appends (one event loop, several store
instances, several OS processes), a restart of the gateway (close and reopen), and a
store that stops answering (StorageError within the op timeout, earlier data intact)."""

from __future__ import annotations

import asyncio
import pathlib
import sqlite3
import subprocess
import sys
import time

import pytest

from smg.storage import Conversation, HistoryStore, StorageError
from smg.storage.sqlite import SqliteStore
from tests.storage_servers import PostgresServer, RedisServer
from tests.unit.storage._appender import items_of
from tests.unit.storage.conftest import Backend
from tests.unit.storage.test_store_conformance import item, response

APPENDER = pathlib.Path(__file__).with_name("_appender.py")


async def all_items(store: HistoryStore, conversation: str) -> list[dict]:
    out: list[dict] = []
    after = None
    while True:
        page = await store.list_items(conversation, limit=100, order="asc", after=after)
        assert page is not None
        out += page.items
        if not page.has_more:
            return out
        after = out[-1]["id"]


def assert_appends_whole(items: list[dict], expected: dict[str, int]) -> None:
    """Every append (``append`` tag -> its item count) is there once, its items together
    and in order."""
    runs: list[tuple[str, list[int]]] = []
    for it in items:
        if runs and runs[-1][0] == it["append"]:
            runs[-1][1].append(it["j"])
        else:
            runs.append((it["append"], [it["j"]]))
    assert sorted(tag for tag, _ in runs) == sorted(expected), "an append was lost or split"
    for tag, js in runs:
        assert js == list(range(expected[tag])), tag


async def test_concurrent_appends_one_loop(backend: Backend) -> None:
    stores = [backend.make()] + ([backend.make()] if backend.kind != "memory" else [])
    for s in stores:
        await s.start()
    try:
        await stores[0].create_conversation(Conversation("conv_c", 1, {}), [])
        appends, per = 40, 3
        results = await asyncio.gather(*(
            stores[k % len(stores)].append_items("conv_c", items_of("t", k, per)) for k in range(appends)
        ))
        assert all(results)
        for s in stores:
            got = await all_items(s, "conv_c")
            assert len(got) == appends * per
            assert_appends_whole(got, {f"t_{k}": per for k in range(appends)})
    finally:
        for s in stores:
            await s.close()


async def test_concurrent_compare_and_set_has_one_winner(backend: Backend) -> None:
    stores = [backend.make()] + ([backend.make()] if backend.kind != "memory" else [])
    for s in stores:
        await s.start()
    try:
        await stores[0].put_response(response("resp_race", status="in_progress"))
        finals = [response("resp_race", status="completed" if n % 2 else "cancelled", text=f"n{n}")
                  for n in range(12)]
        won = await asyncio.gather(*(stores[n % len(stores)].put_response(rec, if_status="in_progress")
                                     for n, rec in enumerate(finals)))
        assert won.count(True) == 1
        assert await stores[-1].get_response("resp_race") == finals[won.index(True)]
    finally:
        for s in stores:
            await s.close()


def test_concurrent_appends_from_processes(persistent_backend: Backend) -> None:
    backend = persistent_backend

    async def setup() -> None:
        s = backend.make()
        await s.start()
        await s.create_conversation(Conversation("conv_mp", 1, {}), [item("first")])
        await s.close()

    asyncio.run(setup())
    procs, appends, per = 3, 25, 4
    children = [
        subprocess.Popen([sys.executable, str(APPENDER), backend.kind, backend.target, "conv_mp", f"p{n}",
                          str(appends), str(per)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for n in range(procs)
    ]
    try:
        for c in children:
            assert c.stdout.readline().strip() == "ready"
        for c in children:  # all start appending together
            c.stdin.write("go\n")
            c.stdin.flush()
        for c in children:
            out, _ = c.communicate(timeout=60)
            assert c.returncode == 0 and out.split() == ["appending", "done"]
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
                c.wait()

    async def check() -> None:
        s = backend.make()
        await s.start()
        got = await all_items(s, "conv_mp")
        await s.close()
        assert got[0] == item("first")
        assert len(got) == 1 + procs * appends * per
        assert_appends_whole(got[1:], {f"p{n}_{k}": per for n in range(procs) for k in range(appends)})

    asyncio.run(check())


def test_a_process_killed_mid_append_leaves_all_or_nothing(persistent_backend: Backend) -> None:
    backend = persistent_backend

    async def count() -> int:
        s = backend.make()
        await s.start()
        try:
            return len(await all_items(s, "conv_k"))
        finally:
            await s.close()

    async def setup() -> None:
        s = backend.make()
        await s.start()
        await s.create_conversation(Conversation("conv_k", 1, {}), [])
        await s.close()

    asyncio.run(setup())
    per = 3000
    child = subprocess.Popen([sys.executable, str(APPENDER), backend.kind, backend.target, "conv_k", "k", "1",
                              str(per)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "appending"
        in_transaction = _wait_for_open_transaction(backend, child)
        child.kill()  # in the middle of its one append (sqlite, postgres: its transaction open)
    finally:
        child.kill()
        child.wait()
    n = asyncio.run(count())
    assert n in (0, per)
    assert in_transaction or backend.kind == "redis" or n == per


def _wait_for_open_transaction(backend: Backend, child: subprocess.Popen) -> bool:
    """Whether ``child`` was seen holding its append's transaction open (the sqlite
    write lock; a PostgreSQL row lock on the items table); False once it has exited or
    for redis (one script, sent and run whole)."""
    deadline = time.monotonic() + 30
    if backend.kind == "sqlite":
        conn = sqlite3.connect(pathlib.Path(backend.target) / "history.db", timeout=0, isolation_level=None)
        try:
            while child.poll() is None and time.monotonic() < deadline:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute("ROLLBACK")
                except sqlite3.OperationalError:
                    return True
        finally:
            conn.close()
    elif backend.kind == "postgres":
        import psycopg

        with psycopg.connect(backend.target, autocommit=True) as conn:
            while child.poll() is None and time.monotonic() < deadline:
                held = conn.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                    " WHERE c.relname = 'smg_conversation_items' AND l.mode = 'RowExclusiveLock'"
                    " AND l.pid <> pg_backend_pid()").fetchone()[0]
                if held:
                    return True
    return False


async def test_history_survives_restart(persistent_backend: Backend) -> None:
    s = persistent_backend.make()
    await s.start()
    await s.put_response(response("resp_a"))
    await s.put_response(response("resp_b", prev="resp_a", status="in_progress"))
    await s.create_conversation(Conversation("conv_r", 3, {"m": "1"}), [item("r1")])
    await s.append_items("conv_r", [item("r2"), item("r3")])
    await s.close()

    again = persistent_backend.make()
    await again.start()  # the schema is there already: nothing to migrate, nothing lost
    try:
        assert [r.id for r in await again.response_chain("resp_b")] == ["resp_a", "resp_b"]
        assert await again.get_response("resp_a") == response("resp_a")
        assert await again.get_conversation("conv_r") == Conversation("conv_r", 3, {"m": "1"})
        assert [i["id"] for i in await all_items(again, "conv_r")] == ["r1", "r2", "r3"]
        # the compare-and-set state is persistent too
        assert await again.put_response(response("resp_b", status="cancelled"), if_status="in_progress")
        await again.append_items("conv_r", [item("r4")])
        assert [i["id"] for i in await all_items(again, "conv_r")] == ["r1", "r2", "r3", "r4"]
    finally:
        await again.close()


async def _seeded(backend: Backend, op_timeout: float) -> HistoryStore:
    s = backend.make(op_timeout=op_timeout)
    await s.start()
    await s.put_response(response("resp_keep"))
    await s.create_conversation(Conversation("conv_keep", 1, {}), [item("k1")])
    return s


async def _fails_fast(s: HistoryStore, bound: float) -> None:
    calls = [
        lambda: s.append_items("conv_keep", [item("lost")]), lambda: s.get_response("resp_keep"),
        lambda: s.put_response(response("resp_new")), lambda: s.list_items("conv_keep"),
    ]
    for call in calls:
        t0 = time.monotonic()
        with pytest.raises(StorageError):
            await call()
        assert time.monotonic() - t0 < bound


async def _intact(s: HistoryStore) -> None:
    deadline = time.monotonic() + 20  # the pool reconnects on its own schedule
    while True:
        try:
            await s.get_conversation("conv_keep")
            break
        except StorageError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    assert await s.get_response("resp_keep") == response("resp_keep")
    assert await s.get_response("resp_new") is None
    assert [i["id"] for i in await all_items(s, "conv_keep")] == ["k1"]
    assert await s.append_items("conv_keep", [item("k2")])  # and it works again
    assert [i["id"] for i in await all_items(s, "conv_keep")] == ["k1", "k2"]


@pytest.mark.parametrize("kind", ["postgres", "redis"])
async def test_server_down_raises_storage_error(kind: str, request: pytest.FixtureRequest) -> None:
    server: PostgresServer | RedisServer = request.getfixturevalue(f"{kind}_server")
    backend = Backend(kind, request.getfixturevalue(f"{kind}_url"))
    s = await _seeded(backend, op_timeout=1.0)
    try:
        # postgres: shut down, then started again on its data directory; redis (which
        # runs here without persistence): frozen, so calls get no answer at all
        server.pause() if isinstance(server, RedisServer) else server.stop()
        await _fails_fast(s, bound=1.0 + 2.0)
        server.resume() if isinstance(server, RedisServer) else server.start()
        await _intact(s)
    finally:
        if isinstance(server, RedisServer):
            server.resume()
        server.start()
        await s.close()


async def test_store_down_at_start_raises_storage_error(persistent_backend: Backend) -> None:
    kind = persistent_backend.kind
    if kind == "sqlite":
        blocker = pathlib.Path(persistent_backend.target)
        blocker.write_text("a file where the data directory should be")
        s: HistoryStore = SqliteStore.in_dir(str(blocker))
    else:
        s = Backend(kind, f"{'postgresql' if kind == 'postgres' else 'redis'}://127.0.0.1:1/x").make(op_timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(StorageError):
        await s.start()
    assert time.monotonic() - t0 < 3.0
    await s.close()


async def test_sqlite_locked_raises_storage_error_and_keeps_data(tmp_path: pathlib.Path) -> None:
    backend = Backend("sqlite", str(tmp_path))
    s = await _seeded(backend, op_timeout=1.0)
    await s.close()
    s = SqliteStore.in_dir(str(tmp_path), busy_timeout_secs=0.3)
    await s.start()
    other = sqlite3.connect(tmp_path / "history.db", isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")  # another process holding the file's lock
        with pytest.raises(StorageError, match="locked"):
            await s.append_items("conv_keep", [item("lost")])
        with pytest.raises(StorageError, match="locked"):
            await s.put_response(response("resp_new"))
        other.execute("ROLLBACK")
        await _intact(s)
    finally:
        other.close()
        await s.close()


async def test_sqlite_waiting_for_the_lock_does_not_block_the_loop(tmp_path: pathlib.Path) -> None:
    # The lock is released by this event loop: if the waiting append blocked the loop,
    # the release could not run and the append would time out with StorageError.
    s = SqliteStore.in_dir(str(tmp_path), busy_timeout_secs=5.0)
    await s.start()
    await s.create_conversation(Conversation("conv_l", 1, {}), [])
    other = sqlite3.connect(tmp_path / "history.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    try:
        task = asyncio.ensure_future(s.append_items("conv_l", [item("l1")]))
        await asyncio.sleep(0.2)
        assert not task.done()
        other.execute("ROLLBACK")
        assert await task is True
        assert [i["id"] for i in await all_items(s, "conv_l")] == ["l1"]
    finally:
        other.close()
        await s.close()
