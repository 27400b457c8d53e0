"""gRPC worker clients: SGLang ``SglangScheduler`` and vLLM ``VllmEngine``.

The only module (with ``smg._proto``) that knows grpc. One ``GrpcWorkerClient`` per
worker holds one channel; ``generate`` yields ``Chunk``/``Complete`` and aborts the
request on the worker when the consumer stops early (client gone, local stop).
This is the transport seam: a leaner HTTP/2 client can replace it behind the same API.

``stream`` is the same call read a batch at a time (the streamed pipeline's interface,
``ItemStream``): ``take()`` everything that arrived, ``await wait()`` for more.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator

import grpc

from smg._proto import common_pb2, sglang_scheduler_pb2 as sg, sglang_scheduler_pb2_grpc as sg_grpc
from smg._proto import vllm_engine_pb2 as vl, vllm_engine_pb2_grpc as vl_grpc
from smg.clients.grpc_types import Chunk, Complete, GenParams, Logprobs, WorkerCallError, http_status

__all__ = ["GrpcWorkerClient", "ItemStream", "grpc_target", "make_client"]

log = logging.getLogger(__name__)

_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
]
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
              grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED}


def grpc_target(url: str) -> str:
    """``grpc://host:port`` -> ``host:port``."""
    for prefix in ("grpc://", "grpcs://"):
        if url.startswith(prefix):
            return url[len(prefix) :].rstrip("/")
    return url


class ItemStream:
    """A worker's response stream read a batch at a time, over any async iterator of
    ``Chunk``/``Complete`` (grpc.aio calls, prefill/decode pairs).

    ``take()`` returns the items that arrived (and raises the stream's
    ``WorkerCallError`` once they are all taken); ``ended`` says the stream finished and
    everything was taken; ``await wait()`` waits for more; ``await first()`` waits for the
    first item (a failure before it raises, for the caller to retry elsewhere);
    ``await aclose()`` leaves the stream (early: the iterator's cleanup aborts the request).
    The lean client's ``GenerateStream`` has the same interface over its HTTP/2 call.
    """

    __slots__ = ("_it", "_buf", "_exc", "_eof", "_waiting", "_expired", "ended")

    def __init__(self, it: AsyncIterator, ready: tuple = ()) -> None:
        self._it = it
        self._buf = list(ready)
        self._exc: BaseException | None = None
        self._eof = False
        self._waiting: asyncio.Task | None = None  # the task inside wait(), for expire()
        self._expired: WorkerCallError | None = None
        self.ended = False

    async def first(self) -> None:
        if not self._buf and not self._eof:
            await self.wait()
        if self._exc is not None and not self._buf:
            exc, self._exc = self._exc, None
            self._eof = self.ended = True
            raise exc

    def take(self) -> list:
        out, self._buf = self._buf, []
        if not out:
            if self._exc is not None:
                exc, self._exc = self._exc, None
                self.ended = True
                raise exc
            self.ended = self._eof
        return out

    async def wait(self) -> None:
        if self._eof or self._exc is not None:
            return
        self._waiting = asyncio.current_task()
        try:
            self._buf.append(await self._it.__anext__())
        except StopAsyncIteration:
            self._eof = True
        except WorkerCallError as exc:
            self._exc = exc
            self._eof = True
        except asyncio.CancelledError:
            if self._expired is None or self._waiting is None:
                raise
            self._waiting.uncancel()  # cancelled by expire(): its error instead
            self._exc = self._expired
            self._eof = True
        finally:
            self._waiting = None

    def expire(self, error: WorkerCallError) -> None:
        """Fail the stream with ``error`` (a timeout): a ``wait()`` in progress is
        interrupted (the iterator's cleanup aborts the request on the worker) and the
        next ``take()`` raises it."""
        if self._eof or self._exc is not None:
            return
        self._expired = error
        if self._waiting is not None:
            self._waiting.cancel()
        else:
            self._exc = error

    async def aclose(self) -> None:
        await self._it.aclose()


def make_client(url: str, proto: str = "sglang", transport: str = "lean") -> GrpcWorkerClient:
    """A worker client: ``lean`` (smg's own HTTP/2, ``grpc_lean``) or ``aio`` (grpc.aio)."""
    if transport == "lean":
        from smg.clients.grpc_lean import LeanGrpcWorkerClient

        return LeanGrpcWorkerClient(url, proto)
    if transport == "aio":
        return GrpcWorkerClient(url, proto)
    raise ValueError(f"unknown gRPC client transport {transport!r} (lean or aio)")


def _fill_tokenized(tokenized, p: GenParams) -> None:
    # in place: a TokenizedInput built apart and passed as a field would be copied
    # (the prompt's ids converted twice, ~40 ns per id each time)
    tokenized.SetInParent()
    if p.original_text:
        tokenized.original_text = p.original_text
    tokenized.input_ids.extend(p.input_ids)


def _logprobs(msg) -> Logprobs | None:
    if msg is None or not msg.token_ids:
        return None
    top = [(list(t.values), list(t.token_ids)) for t in msg.top_logprobs]
    return Logprobs(list(msg.token_logprobs), list(msg.token_ids), top)


class GrpcWorkerClient:
    def __init__(self, url: str, proto: str = "sglang") -> None:
        if proto not in ("sglang", "vllm"):
            raise ValueError(f"unknown gRPC worker protocol {proto!r}")
        self.url = url
        self.proto = proto
        self._channel = grpc.aio.insecure_channel(grpc_target(url), options=_CHANNEL_OPTIONS)
        self._pb = sg if proto == "sglang" else vl
        self._stub = (sg_grpc.SglangSchedulerStub if proto == "sglang" else vl_grpc.VllmEngineStub)(
            self._channel
        )

    async def close(self) -> None:
        await self._channel.close()

    # -- admin ------------------------------------------------------------------------

    async def health(self, timeout: float = 5.0) -> bool:
        try:
            resp = await self._stub.HealthCheck(self._pb.HealthCheckRequest(), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return bool(resp.healthy)

    async def model_info(self, timeout: float = 5.0) -> dict:
        resp = await self._stub.GetModelInfo(self._pb.GetModelInfoRequest(), timeout=timeout)
        return {f.name: v for f, v in resp.ListFields()}

    async def loads(self, timeout: float = 5.0) -> dict:
        resp = await self._stub.GetLoads(self._pb.GetLoadsRequest(), timeout=timeout)
        from google.protobuf.json_format import MessageToDict

        return MessageToDict(resp, preserving_proto_field_name=True)

    async def abort(self, request_id: str) -> None:
        if self.proto == "sglang":
            req = sg.AbortRequest(request_id=request_id, reason="client disconnected")
        else:
            req = vl.AbortRequest(request_ids=[request_id])
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self._stub.Abort(req, timeout=5.0)

    async def get_tokenizer_zip(self, timeout: float = 60.0) -> tuple[bytes, str]:
        """The worker's tokenizer files as a zip, and the sha256 it announced."""
        buf = io.BytesIO()
        sha = ""
        async for chunk in self._stub.GetTokenizer(common_pb2.GetTokenizerRequest(), timeout=timeout):
            buf.write(chunk.data)
            if chunk.sha256:
                sha = chunk.sha256
        return buf.getvalue(), sha

    # -- generate ---------------------------------------------------------------------

    def build_request(self, p: GenParams):
        req = self._request_head(p)
        _fill_tokenized(req.tokenized, p)
        return req

    def _request_head(self, p: GenParams):
        """The GenerateRequest without its prompt (``tokenized``)."""
        if self.proto == "sglang":
            sp = sg.SamplingParams(
                temperature=p.temperature, top_p=p.top_p, top_k=p.top_k, min_p=p.min_p,
                frequency_penalty=p.frequency_penalty, presence_penalty=p.presence_penalty,
                repetition_penalty=p.repetition_penalty, stop_token_ids=p.stop_token_ids,
                skip_special_tokens=True, spaces_between_special_tokens=True, n=p.n,
                min_new_tokens=p.min_new_tokens, ignore_eos=p.ignore_eos, no_stop_trim=p.no_stop_trim,
            )
            if p.max_new_tokens is not None:
                sp.max_new_tokens = p.max_new_tokens
            if p.json_schema is not None:
                sp.json_schema = p.json_schema
            elif p.regex is not None:
                sp.regex = p.regex
            req = sg.GenerateRequest(
                request_id=p.request_id, sampling_params=sp, return_logprob=p.return_logprob,
                logprob_start_len=-1, top_logprobs_num=p.top_logprobs, stream=p.stream,
            )
            if p.bootstrap_room is not None:
                req.disaggregated_params.CopyFrom(sg.DisaggregatedParams(
                    bootstrap_host=p.bootstrap_host or "", bootstrap_port=p.bootstrap_port or 0,
                    bootstrap_room=p.bootstrap_room))
            return req
        sp = vl.SamplingParams(
            temperature=p.temperature, top_p=p.top_p, top_k=max(p.top_k, 0), min_p=p.min_p,
            frequency_penalty=p.frequency_penalty, presence_penalty=p.presence_penalty,
            repetition_penalty=p.repetition_penalty, min_tokens=p.min_new_tokens,
            stop_token_ids=p.stop_token_ids, skip_special_tokens=True,
            spaces_between_special_tokens=True, ignore_eos=p.ignore_eos, n=p.n,
            include_stop_str_in_output=p.no_stop_trim,
        )
        if p.max_new_tokens is not None:
            sp.max_tokens = p.max_new_tokens
        if p.return_logprob:
            sp.logprobs = p.top_logprobs
        if p.seed is not None:
            sp.seed = p.seed
        if p.json_schema is not None:
            sp.json_schema = p.json_schema
        elif p.regex is not None:
            sp.regex = p.regex
        req = vl.GenerateRequest(request_id=p.request_id, sampling_params=sp, stream=p.stream)
        if p.kv_transfer_params_json is not None:
            req.kv_transfer_params_json = p.kv_transfer_params_json
        return req

    def _item(self, resp) -> Chunk | Complete | None:
        """One ``GenerateResponse`` as the gateway's ``Chunk`` or ``Complete`` (None: neither)."""
        kind = resp.WhichOneof("response")
        if kind == "chunk":
            c = resp.chunk
            # [:] makes a list of a repeated field in half the time of list()
            return Chunk(c.index, c.token_ids[:], c.prompt_tokens, c.completion_tokens,
                         c.cached_tokens, _logprobs(c.output_logprobs) if c.HasField("output_logprobs") else None)
        if kind != "complete":
            return None
        c = resp.complete
        which = c.WhichOneof("matched_stop")
        matched = getattr(c, which) if which else None
        kv = c.kv_transfer_params_json if self.proto == "vllm" and c.HasField("kv_transfer_params_json") else None
        return Complete(c.index, c.finish_reason or "stop", matched, c.prompt_tokens,
                        c.completion_tokens, c.cached_tokens, c.output_ids[:],
                        _logprobs(c.output_logprobs) if c.HasField("output_logprobs") else None, kv)

    async def generate(self, params: GenParams) -> AsyncIterator[Chunk | Complete]:
        """Stream one request. Stopping iteration early aborts it on the worker."""
        call = self._stub.Generate(self.build_request(params))
        done = False
        got_any = False
        try:
            async for resp in call:
                item = self._item(resp)
                if item is not None:
                    got_any = True
                    yield item
            done = True
        except grpc.aio.AioRpcError as exc:
            done = True
            code = exc.code()
            status = http_status(code.name)
            raise WorkerCallError(
                f"worker {self.url}: {code.name}: {exc.details()}",
                status=status,
                retryable=not got_any and code in _RETRYABLE,
            ) from None
        finally:
            if not done:  # abort first: a cancelled handler may drop the request unaborted
                asyncio.get_running_loop().create_task(self._abort_then_cancel(call, params.request_id))

    async def _abort_then_cancel(self, call, request_id: str) -> None:
        try:
            await self.abort(request_id)
        finally:
            call.cancel()
