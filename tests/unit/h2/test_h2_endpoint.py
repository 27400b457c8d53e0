"""smg.h2.endpoint.H2Endpoint over a real loopback connection: what both lean gRPC ends
share — SETTINGS and PING answered, the peer's window and frame size applied to what is
held back, messages handed to the subclass per stream, and a protocol error answered
with GOAWAY (code and reason) before the connection is dropped."""

from __future__ import annotations

import asyncio
import struct

from smg.h2 import frames as f
from smg.h2.endpoint import H2Endpoint


class Stream:
    def __init__(self, sid: int, window: int) -> None:
        self.sid, self.window, self.held = sid, window, b""


class Recorder(H2Endpoint):
    """A server end that records what the core hands it and echoes held-back bytes."""

    def __init__(self, seen: list) -> None:
        super().__init__(max_frame=f.DEFAULT_MAX_FRAME, stream_window=1 << 16,
                         conn_window=1 << 20, max_message=1 << 10, server=True)
        self.seen = seen
        self.lost = asyncio.Event()

    def connection_made(self, transport) -> None:
        self._attach(transport)
        self.seen.append(("made", self))

    def connection_lost(self, exc) -> None:
        self.seen.append(("lost",))
        self.lost.set()

    def _on_headers(self, sid: int, flags: int, block: bytes) -> None:
        self.seen.append(("headers", sid, flags, block))
        st = self.streams[sid] = Stream(sid, self.peer_initial_window)
        st.held = b"x" * 100  # sent as far as the peer's windows allow
        self._resume(st)

    def _on_messages(self, st: Stream, messages: list[bytes], end: int) -> None:
        self.seen.append(("messages", st.sid, list(messages), end))

    def _on_reset(self, st: Stream, code: int) -> None:
        self.seen.append(("reset", st.sid, code))

    def _on_stream_error(self, st: Stream, reason: int) -> None:
        self.seen.append(("stream error", st.sid, reason))

    def _resume(self, st: Stream) -> None:
        n = min(len(st.held), st.window, self.send_window, self.peer_max_frame)
        if n > 0:
            st.window -= n
            self.send_window -= n
            self._write(f.frame(f.DATA, 0, st.sid, st.held[:n]))
            st.held = st.held[n:]


async def read_frames(reader: asyncio.StreamReader, count: int) -> list[tuple[int, int, int, bytes]]:
    frames = []
    for _ in range(count):
        head = await asyncio.wait_for(reader.readexactly(9), 5)
        length = int.from_bytes(head[:3], "big")
        payload = await asyncio.wait_for(reader.readexactly(length), 5)
        frames.append((head[3], head[4], int.from_bytes(head[5:], "big"), payload))
    return frames


async def connect(seen: list):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Recorder(seen), "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    writer.write(f.PREFACE)
    return server, reader, writer


def grpc(*msgs: bytes) -> bytes:
    return b"".join(struct.pack(">BI", 0, len(m)) + m for m in msgs)


async def test_settings_ping_windows_and_messages() -> None:
    seen: list = []
    server, reader, writer = await connect(seen)
    try:
        writer.write(f.frame(f.HEADERS, f.END_HEADERS, 1, b"\x83")
                     + f.frame(f.DATA, 0, 1, grpc(b"a", b"b")) + f.frame(f.DATA, f.END_STREAM, 1, grpc(b"c"))
                     + f.settings({f.SETTINGS_INITIAL_WINDOW_SIZE: 10})  # stream 1: 65535 -> 10
                     + f.frame(f.PING, 0, 0, b"pingpong"))
        frames = await read_frames(reader, 3)
        # the held bytes went out at HEADERS (default window), then SETTINGS ACK, PING ACK
        assert frames[0][:3] == (f.DATA, 0, 1) and frames[0][3] == b"x" * 100
        assert frames[1] == (f.SETTINGS, f.ACK, 0, b"") and frames[2] == (f.PING, f.ACK, 0, b"pingpong")
        conn = seen[0][1]
        assert conn.streams[1].window == 65535 - 100 - (65535 - 10)  # the new setting applies
        assert ("messages", 1, [b"a", b"b", b"c"], 0) in seen and ("messages", 1, [], f.END_STREAM) in seen
        # a stream that waits for window: sent when WINDOW_UPDATEs come
        writer.write(f.frame(f.HEADERS, f.END_HEADERS, 3, b"\x83"))
        frames = await read_frames(reader, 1)
        assert frames[0][:3] == (f.DATA, 0, 3) and len(frames[0][3]) == 10
        writer.write(f.window_update(3, 30) + f.rst_stream(1, f.CANCEL))
        frames = await read_frames(reader, 1)
        assert frames[0][:3] == (f.DATA, 0, 3) and len(frames[0][3]) == 30
        assert ("reset", 1, f.CANCEL) in seen
    finally:
        writer.close()
        server.close()


async def test_a_protocol_error_is_answered_with_goaway_and_the_connection_dropped() -> None:
    seen: list = []
    server, reader, writer = await connect(seen)
    try:
        writer.write(f.frame(f.HEADERS, f.END_HEADERS, 1, b"\x83") + f.frame(f.PING, 0, 0, b"short"))
        data = await asyncio.wait_for(reader.read(), 5)  # everything until EOF
        frames = []
        while data:
            n = int.from_bytes(data[:3], "big")
            frames.append((data[3], data[9 : 9 + n]))
            data = data[9 + n :]
        assert [t for t, _ in frames] == [f.DATA, f.GOAWAY]  # the stream's bytes, then GOAWAY
        last_sid, code = struct.unpack(">II", frames[1][1][:8])
        assert last_sid == 0 and code == f.FRAME_SIZE_ERROR and b"PING" in frames[1][1][8:]
        await asyncio.wait_for(seen[0][1].lost.wait(), 5)
    finally:
        writer.close()
        server.close()
