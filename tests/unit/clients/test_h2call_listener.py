"""A call's synchronous listener: run inside the connection's read when messages arrive
while a reader waits; when it takes them the reader keeps waiting, otherwise (or with no
listener, or a reader that was cancelled) the connection behaves as without one."""

from __future__ import annotations

import asyncio

from smg.clients.h2conn import Call, H2Connection


def _conn_and_call() -> tuple[H2Connection, Call]:
    conn = H2Connection()
    call = Call(1, 1 << 16)
    conn.calls[1] = call
    return conn, call


async def test_a_listener_that_takes_the_messages_leaves_the_reader_waiting() -> None:
    conn, call = _conn_and_call()
    seen: list = []

    def listener() -> bool:
        seen.append(list(call.messages))
        call.messages.clear()
        return True

    call.listener = listener
    waiter = call.waiter = asyncio.get_running_loop().create_future()
    conn._on_messages(call, [b"a", b"b"], 0)
    conn._on_messages(call, [b"c"], 0)
    assert seen == [[b"a", b"b"], [b"c"]]
    assert not waiter.done() and call.waiter is waiter
    conn._finish(call, 0, "")  # the end still wakes the reader
    assert waiter.done() and call.waiter is None
    conn._tick.cancel()


async def test_a_listener_that_declines_wakes_the_reader_with_the_messages_kept() -> None:
    conn, call = _conn_and_call()
    calls = []
    call.listener = lambda: calls.append(1) or False
    waiter = call.waiter = asyncio.get_running_loop().create_future()
    conn._on_messages(call, [b"a"], 0)
    assert calls == [1] and waiter.done() and call.waiter is None
    assert list(call.messages) == [b"a"]
    conn._on_messages(call, [b"b"], 0)  # nobody waits now: the listener is not asked
    assert calls == [1] and list(call.messages) == [b"a", b"b"]
    conn._tick.cancel()


async def test_a_cancelled_reader_is_not_listened_for() -> None:
    conn, call = _conn_and_call()
    calls = []
    call.listener = lambda: calls.append(1) or True
    waiter = call.waiter = asyncio.get_running_loop().create_future()
    waiter.cancel()
    conn._on_messages(call, [b"a"], 0)
    assert calls == [] and call.waiter is None and list(call.messages) == [b"a"]
    conn._tick.cancel()
