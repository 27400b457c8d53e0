"""h2wire differential properties: the compiled FrameReader and the Python twin give the
same events and WINDOW_UPDATEs for any bytes split at any points (frames of every type,
valid and broken, and raw garbage); and how the bytes are split does not change what a
connection learns from them."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smg._fast import NO_EXTENSIONS
from smg.h2 import frames as f
from tests.conftest import kernel_impls

STREAMS = st.sampled_from([1, 3, 5, 7])


def grpc(msgs: list[bytes], flag: int = 0) -> bytes:
    return b"".join(struct.pack(">BI", flag, len(m)) + m for m in msgs)


@st.composite
def valid_frames(draw) -> bytes:
    """One frame (HEADERS: with its CONTINUATIONs) as a conforming peer sends it."""
    kind = draw(st.sampled_from(["data"] * 6 + ["headers", "settings", "ping", "rst", "wu",
                                                "goaway", "priority", "unknown"]))
    sid = draw(STREAMS)
    if kind == "data":
        msgs = draw(st.lists(st.binary(max_size=30), max_size=3))
        payload = grpc(msgs, draw(st.sampled_from([0] * 15 + [1])))
        if draw(st.integers(0, 3)) == 0:  # a piece of a message: the rest in other frames
            cut = draw(st.integers(0, len(payload)))
            payload = payload[cut:] if draw(st.booleans()) else payload[:cut]
        flags = draw(st.sampled_from([0, 0, 0, 0, f.END_STREAM, f.PADDED, f.PADDED | f.END_STREAM]))
        if flags & f.PADDED:
            pad = draw(st.integers(0, 6))
            payload = bytes([pad]) + payload + b"\0" * pad
        return f.frame(f.DATA, flags, sid, payload)
    if kind == "headers":
        block = draw(st.binary(max_size=20))
        flags = draw(st.sampled_from([0, f.END_STREAM]))
        if draw(st.booleans()):
            return f.frame(f.HEADERS, flags | f.END_HEADERS | f.PADDED | f.PRIORITY_FLAG, sid,
                           b"\2" + b"\0\0\0\0\x10" + block + b"\0\0")
        cut = draw(st.integers(0, len(block)))
        return (f.frame(f.HEADERS, flags, sid, block[:cut])
                + f.frame(f.CONTINUATION, f.END_HEADERS, sid, block[cut:]))
    if kind == "settings":
        pairs = draw(st.lists(st.tuples(st.sampled_from([1, 3, 4, 6, 9]), st.integers(0, 1 << 20)),
                              max_size=3))
        if draw(st.booleans()):
            pairs.append((5, draw(st.integers(16384, (1 << 24) - 1))))
        if not pairs and draw(st.booleans()):
            return f.frame(f.SETTINGS, f.ACK, 0)
        return f.settings(dict(pairs))
    if kind == "ping":
        return f.frame(f.PING, draw(st.sampled_from([0, f.ACK])), 0, draw(st.binary(min_size=8, max_size=8)))
    if kind == "rst":
        return f.rst_stream(sid, draw(st.integers(0, 0xFFFFFFFF)))
    if kind == "wu":
        return f.window_update(draw(st.sampled_from([0, 1, 3])), draw(st.integers(1, 0x7FFFFFFF)))
    if kind == "goaway":
        return f.goaway(draw(st.integers(0, 9)), draw(st.integers(0, 13)), draw(st.binary(max_size=4)))
    if kind == "priority":
        return f.frame(f.PRIORITY, 0, sid, b"\0" * 5)
    return f.frame(draw(st.integers(10, 255)), draw(st.integers(0, 255)), sid, draw(st.binary(max_size=8)))


@st.composite
def broken_frame(draw) -> bytes:
    """Something a conforming peer never sends."""
    sid = draw(STREAMS)
    return draw(st.sampled_from([
        f.frame(f.DATA, 0, 0, grpc([b"x"])),
        f.frame(f.DATA, f.PADDED, sid, b"\x09abc"),
        f.frame(f.DATA, f.PADDED, sid, b""),
        f.frame(f.HEADERS, f.END_HEADERS, 0, b"\x88"),
        f.frame(f.HEADERS, f.END_HEADERS | f.PADDED, sid, b"\x05\x88"),
        f.frame(f.HEADERS, f.END_HEADERS | f.PRIORITY_FLAG, sid, b"\0\0"),
        f.frame(f.HEADERS, 0, sid, b"\x88") + f.frame(f.PING, 0, 0, b"8 bytes!"),
        f.frame(f.HEADERS, 0, 1, b"\x88") + f.frame(f.CONTINUATION, f.END_HEADERS, 3, b""),
        f.frame(f.CONTINUATION, f.END_HEADERS, sid, b"\x88"),
        f.frame(f.SETTINGS, 0, 1, b""),
        f.frame(f.SETTINGS, f.ACK, 0, b"\0" * 6),
        f.frame(f.SETTINGS, 0, 0, b"\0" * 7),
        f.settings({2: 2}), f.settings({4: 1 << 31}), f.settings({5: 100}), f.settings({5: 1 << 24}),
        f.frame(f.PING, 0, 1, b"8 bytes!"),
        f.frame(f.PING, 0, 0, b"short"),
        f.frame(f.RST_STREAM, 0, 0, b"\0\0\0\0"),
        f.frame(f.RST_STREAM, 0, sid, b"\0"),
        f.frame(f.WINDOW_UPDATE, 0, sid, b"\0\0\0"),
        f.window_update(sid, 0),
        f.frame(f.GOAWAY, 0, 1, b"\0" * 8),
        f.frame(f.GOAWAY, 0, 0, b"\0" * 7),
        f.frame(f.PUSH_PROMISE, f.END_HEADERS, sid, b"\0\0\0\2"),
        f.frame(f.DATA, 0, sid, b"\0" * 20000),  # larger than any max_frame but 1 << 20
        draw(st.binary(min_size=1, max_size=12)),
    ]))


@st.composite
def scenario(draw):
    server = draw(st.booleans())
    frames = draw(st.lists(valid_frames(), max_size=25))
    if draw(st.integers(0, 2)) == 0:
        frames.insert(draw(st.integers(0, len(frames))), draw(broken_frame()))
    wire = b"".join(frames)
    if server:
        wire = (f.PREFACE if draw(st.integers(0, 7)) else b"GET / HTTP/1.1\r\n\r\n.......") + wire
    cuts = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    # before each piece: streams to open, discard or close
    ops = [draw(st.lists(st.tuples(st.sampled_from(["open", "open", "discard", "close"]), STREAMS),
                         max_size=2))
           for _ in pieces]
    options = dict(max_frame=draw(st.sampled_from([64, 16384, 16384, 1 << 20])),
                   stream_window=draw(st.sampled_from([100, 65535, 65535])),
                   conn_window=draw(st.sampled_from([300, 1 << 30, 1 << 30])),
                   max_message=draw(st.sampled_from([12, 1 << 20, 1 << 20])), server=server)
    return options, pieces, ops


def replay(module, options, pieces, ops) -> list:
    reader = module.FrameReader(**options)
    reader.open(1)
    reader.open(3)
    got = []
    for piece, todo in zip(pieces, ops, strict=True):
        for op, sid in todo:
            getattr(reader, op)(sid)
        got.append(reader.feed(piece))
    return got


@pytest.mark.c_extension
@pytest.mark.skipif(NO_EXTENSIONS, reason="SMG_NO_EXTENSIONS=1: pure-Python run")
@given(scenario())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_compiled_matches_the_twin(case) -> None:
    from smg._fast import h2wire_c, h2wire_py

    options, pieces, ops = case
    assert replay(h2wire_c, options, pieces, ops) == replay(h2wire_py, options, pieces, ops)


def learned(module, options, pieces) -> tuple[list, bytes]:
    """What the reader tells, independent of how events were grouped: one item per
    message or stream error (between two other events, in order per stream), the other
    events as they are, the first connection error only."""
    reader = module.FrameReader(**options)
    for sid in (1, 3, 5, 7):
        reader.open(sid)
    items, run, out = [], [], b""

    def end_run() -> None:
        items.extend(sorted(run, key=lambda item: item[0]))  # stable: order per stream kept
        run.clear()

    for piece in pieces:
        events, more = reader.feed(piece)
        out += more
        for kind, flags, sid, value in events:
            if kind == module.MESSAGES:
                run.extend((sid, "message", m) for m in value)
                if flags:
                    run.append((sid, "end"))
                continue
            if kind == module.STREAM_ERROR:  # found in DATA: part of the stream's run
                run.append((sid, "error", value))
                continue
            end_run()
            items.append((kind, flags, sid, value))
            if kind == module.CONNECTION_ERROR:
                return items, out
    end_run()
    return items, out


@pytest.mark.parametrize("impl", kernel_impls("h2wire"))
@given(scenario())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_splitting_the_bytes_changes_nothing(impl, case) -> None:
    options, pieces, _ = case
    assert learned(impl.module, options, pieces) == learned(impl.module, options, [b"".join(pieces)])
