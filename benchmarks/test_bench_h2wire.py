"""h2wire kernel: the lean gRPC client's receive path for streamed tokens, compiled beside
the Python twin, same run, same bytes.

The bytes are what the reference worker's lean server writes for a streamed Generate:
one DATA frame per token per stream (9-byte frame header, 5-byte gRPC prefix, an SGLang
``GenerateResponse`` chunk with one token id), 64 streams x 64 tokens, interleaved
stream by stream, handed over in reads of 1 or 16 frames (a busy gateway gets several
streams' tokens per ``recv``).

- ``feed``: ``FrameReader.feed`` alone (frames split, messages de-framed, windows counted).
- ``conn``: ``H2Connection.data_received`` (the kernel plus the client's per-stream
  dispatch into each ``Call``), with the compiled reader or the twin in it.

Run::

    python -m pytest benchmarks/test_bench_h2wire.py -q -p no:randomly -s
"""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from smg._fast import NO_EXTENSIONS, h2wire_py
from smg._proto import sglang_scheduler_pb2 as sg
from smg.h2 import frames as f

pytest.importorskip("pytest_benchmark")
if NO_EXTENSIONS:
    pytest.skip("SMG_NO_EXTENSIONS=1: nothing compiled to compare", allow_module_level=True)
from smg._fast import h2wire_c  # noqa: E402

STREAMS, TOKENS, ROUNDS = 64, 64, 15
SIDS = [2 * i + 1 for i in range(STREAMS)]
OPTIONS = dict(max_frame=1 << 20, stream_window=1 << 24, conn_window=1 << 30)
RESULTS: dict[tuple[str, ...], float] = {}


def token_frame(sid: int, i: int) -> bytes:
    msg = sg.GenerateResponse(request_id=f"req-{sid}", chunk=sg.GenerateStreamChunk(
        token_ids=[1000 + i], prompt_tokens=12, completion_tokens=i + 1)).SerializeToString()
    return f.frame(f.DATA, 0, sid, f.grpc_message(msg))


def reads(per_read: int) -> list[bytes]:
    frames = [token_frame(sid, i) for i in range(TOKENS) for sid in SIDS]
    return [b"".join(frames[k : k + per_read]) for k in range(0, len(frames), per_read)]


def best_of(benchmark, key: tuple[str, ...], variants: dict, units: int) -> None:
    """Every variant once per round (order rotating); ns per unit from its fastest round."""
    spent: dict[str, float] = {name: float("inf") for name in variants}
    order = list(variants)

    def one_round() -> None:
        order.append(order.pop(0))
        for name in order:
            t0 = time.perf_counter()
            variants[name]()
            spent[name] = min(spent[name], time.perf_counter() - t0)

    gc.collect()
    gc.disable()
    try:
        benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    finally:
        gc.enable()
    for name, seconds in spent.items():
        RESULTS[(*key, name)] = seconds / units * 1e9
        benchmark.extra_info[f"{name}_ns"] = round(seconds / units * 1e9, 1)


@pytest.mark.parametrize("per_read", [1, 16])
def test_feed(benchmark, per_read: int) -> None:
    data = reads(per_read)

    def run(module) -> None:
        reader = module.FrameReader(**OPTIONS)
        for sid in SIDS:
            reader.open(sid)
        for chunk in data:
            reader.feed(chunk)

    best_of(benchmark, ("feed", str(per_read)), {"c": lambda: run(h2wire_c), "py": lambda: run(h2wire_py)},
            STREAMS * TOKENS)


@pytest.mark.parametrize("per_read", [1, 16])
def test_conn(benchmark, per_read: int) -> None:
    from smg.clients.h2conn import H2Connection

    data = reads(per_read)

    async def make(module) -> H2Connection:
        conn = H2Connection()
        conn._tick.cancel()
        conn.reader = module.FrameReader(**OPTIONS)
        for sid in SIDS:
            conn.open(b"\x83", b"")
        conn.out.clear()
        return conn

    loop = asyncio.new_event_loop()
    conns = {"c": loop.run_until_complete(make(h2wire_c)), "py": loop.run_until_complete(make(h2wire_py))}

    def run(conn) -> None:
        for chunk in data:
            conn.data_received(chunk)
        for call in conn.calls.values():
            call.messages.clear()

    try:
        best_of(benchmark, ("conn", str(per_read)), {k: (lambda c=c: run(c)) for k, c in conns.items()},
                STREAMS * TOKENS)
    finally:
        loop.close()


def test_zz_report() -> None:
    """Print the ratios (runs last in this module)."""
    lines = ["", f"h2wire: ns per streamed token (one DATA frame), min of {ROUNDS} rounds"]
    for kind in ("feed", "conn"):
        for per_read in ("1", "16"):
            c, py = RESULTS.get((kind, per_read, "c")), RESULTS.get((kind, per_read, "py"))
            if c and py:
                lines.append(f"  {kind:4s} {per_read:>2s} frames/read: compiled {c:6.0f}  twin {py:6.0f}"
                             f"  twin/compiled x{py / c:.1f}")
    print("\n".join(lines))
