"""The lean HTTP/2 gRPC server under a raw HTTP/2 client (the ``h2`` package): flow
control, CONTINUATION, trailers-only errors, RST_STREAM, PING; and the same calls on
both servers (lean and grpc.aio) with a grpc.aio client."""

from __future__ import annotations

import asyncio
import hashlib
import struct

import grpc
import pytest
from _grpc_worker_lib import deepseek_tokenizer, grpc_worker

from smg._proto import common_pb2, sglang_scheduler_pb2 as pb, sglang_scheduler_pb2_grpc as pbg

h2_connection = pytest.importorskip("h2.connection")
import h2.config  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402

SERVICE = "/sglang.grpc.scheduler.SglangScheduler/"


@pytest.fixture
def tokenizer():
    return deepseek_tokenizer()


def _port(channel: grpc.aio.Channel) -> int:
    return int(channel._channel.target.decode().rsplit(":", 1)[1])


class RawH2:
    """A minimal HTTP/2 client that acknowledges received data only when told to."""

    def __init__(self, reader, writer, window: int | None = None) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h2_connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.events: list = []

    @classmethod
    async def open(cls, port: int, window: int | None = None) -> RawH2:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer, window)
        await client.flush()
        return client

    async def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())
        await self.writer.drain()

    async def call(self, method: str, message: bytes, extra=(), flag: int = 0) -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":path", SERVICE + method),
                   (":authority", "127.0.0.1"), ("content-type", "application/grpc"),
                   ("te", "trailers"), *extra]
        self.conn.send_headers(sid, headers)
        self.conn.send_data(sid, struct.pack(">BI", flag, len(message)) + message, end_stream=True)
        await self.flush()
        return sid

    async def next_event(self):
        while not self.events:
            data = await asyncio.wait_for(self.reader.read(65536), 10)
            if not data:
                raise ConnectionError("closed")
            self.events.extend(self.conn.receive_data(data))
            await self.flush()
        return self.events.pop(0)

    async def close(self) -> None:
        self.writer.close()


def _trailers(event) -> dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in event.headers}


async def test_flow_control_small_window_tokenizer_stream(tokenizer) -> None:
    async with grpc_worker(tokenizer) as (_, ch):
        client = await RawH2.open(_port(ch), window=1000)
        sid = await client.call("GetTokenizer", common_pb2.GetTokenizerRequest().SerializeToString())
        body, trailers, unacked = bytearray(), None, 0
        while trailers is None:
            ev = await client.next_event()
            if isinstance(ev, h2.events.DataReceived):
                body += ev.data
                unacked += ev.flow_controlled_length
                assert unacked <= 1000  # h2 itself also rejects a window overrun
                client.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                unacked = 0
                await client.flush()
            elif isinstance(ev, h2.events.TrailersReceived):
                trailers = _trailers(ev)
        assert trailers["grpc-status"] == "0"
        chunks, pos = [], 0
        while pos < len(body):
            n = struct.unpack(">I", body[pos + 1 : pos + 5])[0]
            chunks.append(common_pb2.GetTokenizerChunk.FromString(bytes(body[pos + 5 : pos + 5 + n])))
            pos += 5 + n
        data = b"".join(c.data for c in chunks)
        assert hashlib.sha256(data).hexdigest() == chunks[-1].sha256
        await client.close()


async def test_errors_are_trailers_only(tokenizer) -> None:
    async with grpc_worker(tokenizer) as (_, ch):
        client = await RawH2.open(_port(ch))
        await client.call("NoSuchMethod", b"")
        await client.call("HealthCheck", b"x", flag=1)  # "compressed"
        statuses = []
        while len(statuses) < 2:
            ev = await client.next_event()
            if isinstance(ev, h2.events.ResponseReceived):
                h = _trailers(ev)
                assert h[":status"] == "200" and h["content-type"] == "application/grpc"
                statuses.append((h["grpc-status"], h.get("grpc-message", "")))
        assert statuses[0][0] == "12" and "NoSuchMethod" in statuses[0][1]
        assert statuses[1][0] == "12"
        await client.close()


async def test_continuation_frames_and_ping(tokenizer) -> None:
    async with grpc_worker(tokenizer) as (_, ch):
        client = await RawH2.open(_port(ch))
        client.conn.ping(b"12345678")
        await client.call("HealthCheck", b"", extra=[("x-pad", "a" * 40000)])  # > one frame
        pong, healthy = False, None
        while healthy is None or not pong:
            ev = await client.next_event()
            if isinstance(ev, h2.events.PingAckReceived):
                pong = ev.ping_data == b"12345678"
            elif isinstance(ev, h2.events.DataReceived):
                healthy = pb.HealthCheckResponse.FromString(bytes(ev.data[5:])).healthy
        assert healthy is True
        await client.close()


async def test_rst_stream_cancels_the_call(tokenizer) -> None:
    async with grpc_worker(tokenizer) as (engine, ch):
        client = await RawH2.open(_port(ch))
        req = pb.GenerateRequest(request_id="rst", tokenized=pb.TokenizedInput(input_ids=[5, 6, 7]),
                                 sampling_params=pb.SamplingParams(n=1), stream=True)
        sid = await client.call("Generate", req.SerializeToString(), extra=[("x-smg-fault", "stall:1")])
        while not isinstance(await client.next_event(), h2.events.DataReceived):
            pass
        assert engine.loads()["num_running_reqs"] == 1
        client.conn.reset_stream(sid)
        await client.flush()
        for _ in range(500):
            if engine.loads()["num_running_reqs"] == 0:
                break
            await asyncio.sleep(0.01)
        assert engine.loads()["num_running_reqs"] == 0
        await client.close()


async def test_bad_preface_closes_the_connection(tokenizer) -> None:
    async with grpc_worker(tokenizer) as (_, ch):
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(ch))
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)  # SETTINGS, then GOAWAY and EOF
        assert data[3:4] == b"\x04" and b"\x07" in data[:200]
        writer.close()


@pytest.mark.parametrize("server", ["lean", "aio"])
async def test_same_calls_on_both_servers(tokenizer, server) -> None:
    async with grpc_worker(tokenizer, grpc_server=server) as (engine, ch):
        stub = pbg.SglangSchedulerStub(ch)
        req = pb.GenerateRequest(request_id="b", tokenized=pb.TokenizedInput(input_ids=tokenizer.encode("hi")),
                                 sampling_params=pb.SamplingParams(n=1, max_new_tokens=7), stream=True)
        rs = [r async for r in stub.Generate(req)]
        assert sum(len(r.chunk.token_ids) for r in rs) == 7 and rs[-1].complete.finish_reason == "length"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.Generate(req, metadata=[("x-smg-fault", "error_mid_stream:2")]):
                pass
        assert info.value.code() == grpc.StatusCode.INTERNAL
        assert "error_mid_stream" in info.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.Generate(req, metadata=[("x-smg-fault", "disconnect_mid_stream:2")]):
                pass
        # lean: the HTTP/2 stream is reset; grpc.aio cannot reset, it ends UNAVAILABLE
        expected = grpc.StatusCode.INTERNAL if server == "lean" else grpc.StatusCode.UNAVAILABLE
        assert info.value.code() == expected
        assert (await stub.HealthCheck(pb.HealthCheckRequest())).healthy  # connection lives
