"""h2wire.FrameReader: gRPC messages out of DATA frames however they are cut, the events
in frame order, receive flow control, and a clear connection error for what breaks the
protocol (both implementations)."""

from __future__ import annotations

import struct

import pytest

from smg.h2 import frames as f
from tests.conftest import kernel_impls

impls = pytest.mark.parametrize("impl", kernel_impls("h2wire"))
BIG = dict(max_frame=1 << 20, stream_window=1 << 24, conn_window=1 << 30)


def grpc(*msgs: bytes, flag: int = 0) -> bytes:
    return b"".join(struct.pack(">BI", flag, len(m)) + m for m in msgs)


def reader(impl, *sids: int, **options):
    r = impl.module.FrameReader(**{**BIG, **options})
    for sid in sids:
        r.open(sid)
    return r


@impls
def test_messages_across_frames_and_reads(impl) -> None:
    m = impl.module
    r = reader(impl, 1)
    wire = grpc(b"one", b"", b"three" * 100, b"four")
    frames = b"".join(f.frame(f.DATA, 0, 1, wire[i : i + 7]) for i in range(0, len(wire), 7))
    got = []
    for i in range(0, len(frames), 5):  # 5-byte reads: frame headers cut too
        events, out = r.feed(frames[i : i + 5])
        assert out == b""
        for kind, flags, sid, value in events:
            assert (kind, flags, sid) == (m.MESSAGES, 0, 1)
            got.extend(value)
    assert got == [b"one", b"", b"three" * 100, b"four"]


@impls
def test_runs_group_a_streams_messages_until_another_frame(impl) -> None:
    m = impl.module
    r = reader(impl, 1, 3)
    wire = (f.frame(f.DATA, 0, 1, grpc(b"a", b"b")) + f.frame(f.DATA, 0, 3, grpc(b"x"))
            + f.frame(f.DATA, 0, 1, grpc(b"c")) + f.frame(f.PING, 0, 0, b"12345678")
            + f.frame(f.DATA, 0, 1, grpc(b"d")) + f.frame(f.DATA, f.END_STREAM, 3, grpc(b"y"))
            + f.frame(f.DATA, 0, 1, grpc(b"e")) + f.frame(f.DATA, 0, 3, grpc(b"after the end"))
            + f.frame(f.DATA, 0, 5, grpc(b"not open")))
    events, _ = r.feed(wire)
    assert events == [(m.MESSAGES, 0, 1, [b"a", b"b", b"c"]), (m.MESSAGES, 0, 3, [b"x"]),
                      (m.PING, 0, 0, b"12345678"), (m.MESSAGES, 0, 1, [b"d", b"e"]),
                      (m.MESSAGES, 0, 3, [b"y"]), (m.MESSAGES, f.END_STREAM, 3, []),
                      (m.MESSAGES, 0, 3, [b"after the end"])]
    events, _ = r.feed(f.frame(f.DATA, 0, 1, grpc(b"f")))  # a new feed: a new list
    assert events == [(m.MESSAGES, 0, 1, [b"f"])]


@impls
def test_padding_headers_and_continuation(impl) -> None:
    m = impl.module
    r = reader(impl, 1)
    padded = f.frame(f.DATA, f.PADDED, 1, b"\x03" + grpc(b"hi") + b"\0\0\0")
    headers = (f.frame(f.HEADERS, f.END_STREAM | f.PADDED | f.PRIORITY_FLAG, 1,
                       b"\x02" + b"\0\0\0\3\x10" + b"blo" + b"\0\0")
               + f.frame(f.CONTINUATION, 0, 1, b"ck")
               + f.frame(f.CONTINUATION, f.END_HEADERS, 1, b"!"))
    events, _ = r.feed(padded + headers + f.frame(f.HEADERS, f.END_HEADERS, 9, b"\x88"))
    assert events == [(m.MESSAGES, 0, 1, [b"hi"]), (m.HEADERS, f.END_STREAM, 1, b"block!"),
                      (m.HEADERS, 0, 9, b"\x88")]


@impls
def test_control_frames_become_events(impl) -> None:
    m = impl.module
    r = reader(impl)
    wire = (f.settings({f.SETTINGS_INITIAL_WINDOW_SIZE: 1000, f.SETTINGS_MAX_FRAME_SIZE: 1 << 20})
            + f.frame(f.SETTINGS, f.ACK, 0) + f.frame(f.PING, f.ACK, 0, b"smg-ping")
            + f.rst_stream(3, f.CANCEL) + f.window_update(0, 5) + f.window_update(3, 7)
            + f.frame(f.PRIORITY, 0, 3, b"\0" * 5) + f.frame(0x42, 0xFF, 3, b"unknown")
            + f.goaway(11, f.ENHANCE_YOUR_CALM, b"debug"))
    events, out = r.feed(wire)
    assert out == b""
    assert events == [(m.SETTINGS, 0, 0, [(4, 1000), (5, 1 << 20)]), (m.PING, f.ACK, 0, b"smg-ping"),
                      (m.RST_STREAM, 0, 3, f.CANCEL), (m.WINDOW_UPDATE, 0, 0, 5),
                      (m.WINDOW_UPDATE, 0, 3, 7), (m.GOAWAY, 0, 11, f.ENHANCE_YOUR_CALM)]


@impls
def test_window_updates_once_half_a_window_is_used(impl) -> None:
    r = reader(impl, 1, max_frame=16384, stream_window=1000, conn_window=3000)
    data = f.frame(f.DATA, 0, 1, grpc(b"x" * 395))  # 400 bytes counted
    assert r.feed(data)[1] == b""
    assert r.feed(data)[1] == f.window_update(1, 800)  # stream: 800 >= 500
    r.close(1)
    assert r.feed(data)[1] == b""  # a closed stream counts for the connection only
    assert r.feed(data)[1] == f.window_update(0, 1600)  # connection: 1600 >= 1500
    r.open(3)
    ended = f.frame(f.DATA, f.END_STREAM, 3, grpc(b"x" * 795))
    assert r.feed(ended)[1] == b""  # the stream ends: no credit for it


@impls
def test_discard_keeps_flow_control_and_drops_messages(impl) -> None:
    m = impl.module
    r = reader(impl, 1, stream_window=100)
    r.feed(f.frame(f.DATA, 0, 1, grpc(b"whole", b"part")[:-2]))
    r.discard(1)
    events, out = r.feed(f.frame(f.DATA, 0, 1, b"rt" + grpc(b"y" * 40)))
    assert out == f.window_update(1, 17 + 47) and events == []
    events, _ = r.feed(f.frame(f.DATA, f.END_STREAM, 1, grpc(b"z")))
    assert events == [(m.MESSAGES, f.END_STREAM, 1, [])]


@impls
@pytest.mark.parametrize("payload,reason", [(grpc(b"zipped", flag=1), "MESSAGE_COMPRESSED"),
                                            (grpc(b"y" * 11), "MESSAGE_TOO_LARGE")])
def test_stream_errors_stop_the_stream_only(impl, payload, reason) -> None:
    m = impl.module
    r = reader(impl, 1, 3, max_message=10)
    events, _ = r.feed(f.frame(f.DATA, 0, 1, grpc(b"ok") + payload + grpc(b"lost"))
                       + f.frame(f.DATA, 0, 3, grpc(b"fine")) + f.frame(f.DATA, 0, 1, grpc(b"x")))
    assert events == [(m.MESSAGES, 0, 1, [b"ok"]), (m.STREAM_ERROR, 0, 1, getattr(m, reason)),
                      (m.MESSAGES, 0, 3, [b"fine"])]


@impls
def test_the_end_of_a_stream_comes_after_its_messages_and_errors(impl) -> None:
    m = impl.module
    r = reader(impl, 1)
    events, _ = r.feed(f.frame(f.DATA, f.END_STREAM, 1, grpc(b"ok") + grpc(b"zip", flag=1)))
    assert events == [(m.MESSAGES, 0, 1, [b"ok"]), (m.STREAM_ERROR, 0, 1, m.MESSAGE_COMPRESSED),
                      (m.MESSAGES, f.END_STREAM, 1, [])]


@impls
def test_server_preface(impl) -> None:
    m = impl.module
    r = reader(impl, server=True)
    wire = f.PREFACE + f.frame(f.PING, 0, 0, b"12345678")
    assert r.feed(wire[:10])[0] == []
    assert r.feed(wire[10:])[0] == [(m.PING, 0, 0, b"12345678")]
    r = reader(impl, server=True)
    assert r.feed(b"GET / HTTP/1.1\r\n")[0] == [
        (m.CONNECTION_ERROR, f.PROTOCOL_ERROR, 0, "not an HTTP/2 connection preface")]


@impls
def test_on_a_server_the_peers_headers_open_new_streams(impl) -> None:
    m = impl.module
    r = reader(impl, server=True)
    request = (f.frame(f.HEADERS, f.END_HEADERS, 3, b"\x83") + f.frame(f.DATA, f.END_STREAM, 3, grpc(b"req"))
               + f.frame(f.HEADERS, 0, 1, b"\x83") + f.frame(f.CONTINUATION, f.END_HEADERS, 1, b"")
               + f.frame(f.DATA, f.END_STREAM, 1, grpc(b"old id: not opened"))
               + f.frame(f.HEADERS, f.END_HEADERS, 6, b"\x83") + f.frame(f.DATA, 0, 6, grpc(b"even")))
    events, _ = r.feed(f.PREFACE + request)
    assert events == [(m.HEADERS, 0, 3, b"\x83"), (m.MESSAGES, 0, 3, [b"req"]),
                      (m.MESSAGES, f.END_STREAM, 3, []),
                      (m.HEADERS, 0, 1, b"\x83"), (m.HEADERS, 0, 6, b"\x83")]
    client = reader(impl)  # a client opens its streams itself
    assert client.feed(request)[0] == [(m.HEADERS, 0, 3, b"\x83"), (m.HEADERS, 0, 1, b"\x83"),
                                       (m.HEADERS, 0, 6, b"\x83")]


BROKEN = [
    (f.frame(f.DATA, 0, 1, b"\0" * 17), f.FRAME_SIZE_ERROR, "frame larger"),
    (f.frame(f.DATA, 0, 0, grpc(b"x")), f.PROTOCOL_ERROR, "DATA on stream 0"),
    (f.frame(f.DATA, f.PADDED, 1, b"\x05ab"), f.PROTOCOL_ERROR, "padding"),
    (f.frame(f.HEADERS, 0, 1, b"\x88") + f.frame(f.DATA, 0, 1, b""), f.PROTOCOL_ERROR, "expected CONTINUATION"),
    (f.frame(f.HEADERS, 0, 1, b"\x88") + f.frame(f.CONTINUATION, 4, 3, b""), f.PROTOCOL_ERROR, "unexpected CONTINUATION"),
    (f.frame(f.SETTINGS, 0, 0, b"\0\4\0"), f.FRAME_SIZE_ERROR, "multiple of 6"),
    (f.settings({f.SETTINGS_INITIAL_WINDOW_SIZE: 1 << 31}), f.FLOW_CONTROL_ERROR, "INITIAL_WINDOW"),
    (f.frame(f.PING, 0, 0, b"1234"), f.FRAME_SIZE_ERROR, "PING length"),
    (f.window_update(1, 0), f.PROTOCOL_ERROR, "WINDOW_UPDATE of 0"),
    (f.frame(f.PUSH_PROMISE, 4, 1, b"\0\0\0\2"), f.PROTOCOL_ERROR, "PUSH_PROMISE"),
    (f.frame(f.DATA, 0, 1, grpc(b"x" * 11)), f.FLOW_CONTROL_ERROR, "stream window"),
]


@impls
@pytest.mark.parametrize("wire,code,why", BROKEN)
def test_protocol_errors_end_the_connection(impl, wire, code, why) -> None:
    m = impl.module
    r = reader(impl, 1, max_frame=16, stream_window=10, conn_window=1000)
    events, _ = r.feed(f.frame(f.PING, 0, 0, b"before!!") + wire + f.frame(f.PING, 0, 0, b"after!!!"))
    assert events[0] == (m.PING, 0, 0, b"before!!")
    kind, error_code, sid, text = events[-1]
    assert (kind, error_code, sid) == (m.CONNECTION_ERROR, code, 0) and why in text
    assert all(e[0] != m.PING or e[3] != b"after!!!" for e in events)
    assert r.feed(f.frame(f.PING, 0, 0, b"later!!!"))[0] == [events[-1]]  # sticky


@impls
def test_more_than_the_connection_window_is_an_error(impl) -> None:
    m = impl.module
    r = reader(impl, max_frame=16, conn_window=30)
    assert r.feed(f.frame(f.DATA, 0, 3, grpc(b"x" * 9)))[0] == []  # 14 of 30
    events, out = r.feed(f.frame(f.DATA, 0, 3, grpc(b"x" * 11)))  # 30 of 30: at the limit
    assert events == [] and out == f.window_update(0, 30)
    assert r.feed(f.frame(f.DATA, 0, 3, grpc(b"x")))[0] == []  # 6 of 30
    r = reader(impl, max_frame=16, conn_window=12)
    events, _ = r.feed(f.frame(f.DATA, 0, 3, grpc(b"x" * 11)))
    assert events == [(m.CONNECTION_ERROR, f.FLOW_CONTROL_ERROR, 0, "DATA beyond the connection window")]


@impls
def test_a_frame_larger_than_the_limit_is_refused_before_it_arrives(impl) -> None:
    m = impl.module
    r = reader(impl, 1, max_frame=16384)
    events, _ = r.feed(f.frame(f.DATA, 0, 1, b"\0" * 20000)[:100])
    assert events[-1][:2] == (m.CONNECTION_ERROR, f.FRAME_SIZE_ERROR)


def test_the_chooser_uses_the_compiled_kernel_unless_told_not_to() -> None:
    from smg._fast import NO_EXTENSIONS, h2wire

    assert h2wire.IMPLEMENTATION == ("python" if NO_EXTENSIONS else "cython")
    assert h2wire.FrameReader.__module__.startswith("smg._fast.h2wire_" + ("py" if NO_EXTENSIONS else "c"))
