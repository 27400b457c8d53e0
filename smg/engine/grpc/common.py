"""What the SGLang and vLLM servicers share: error codes, faults from metadata, the
tokenizer zip stream, KV event batches, load reports."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from typing import Any

import grpc

from smg import __version__
from smg._proto import common_pb2
from smg.engine.core import Engine, EngineDisconnect, EngineError
from smg.engine.kvcache import KvEventBatch

__all__ = [
    "FAULT_METADATA_KEY",
    "TOKENIZER_CHUNK_BYTES",
    "abort_with",
    "event_batch_pb",
    "metadata_fault",
    "status_code",
    "tokenizer_chunks",
]

FAULT_METADATA_KEY = "x-smg-fault"
TOKENIZER_CHUNK_BYTES = 64 * 1024  # as the SGLang servicer streams its bundle

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_code(exc: EngineError) -> grpc.StatusCode:
    return _CODES.get(exc.status_code, grpc.StatusCode.INTERNAL)


async def abort_with(context: grpc.aio.ServicerContext, exc: EngineError) -> None:
    """End the rpc for ``exc``. An injected disconnect resets the HTTP/2 stream on the
    lean server (the client sees a stream broken without trailers); grpc.aio cannot, so
    there it ends as a lost connection reads (UNAVAILABLE)."""
    if isinstance(exc, EngineDisconnect):
        reset = getattr(context, "reset_stream", None)
        if reset is not None:
            await reset()
        await context.abort(grpc.StatusCode.UNAVAILABLE, "Connection reset (injected fault)")
    await context.abort(status_code(exc), exc.message)


def metadata_fault(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == FAULT_METADATA_KEY:
            return value if isinstance(value, str) else value.decode()
    return None


async def tokenizer_chunks(engine: Engine) -> AsyncIterator[common_pb2.GetTokenizerChunk]:
    from smg.tokenizer import zip_tokenizer_files

    data, digest = zip_tokenizer_files(engine.tokenizer)
    step = TOKENIZER_CHUNK_BYTES
    last = max(len(data) - 1, 0) // step
    for i in range(last + 1):
        piece = data[i * step : (i + 1) * step]
        yield common_pb2.GetTokenizerChunk(data=piece, sha256=digest if i == last else "")


def event_batch_pb(batch: KvEventBatch) -> common_pb2.KvEventBatch:
    events = []
    for ev in batch.events:
        if ev.kind == "stored":
            blocks = [
                common_pb2.KvBlock(
                    block_hash=b.block_hash, token_ids=b.token_ids, block_size=ev.block_size
                )
                for b in ev.blocks
            ]
            stored = common_pb2.KvBlocksStored(blocks=blocks)
            parent = ev.blocks[0].parent_hash if ev.blocks else None
            if parent is not None:
                stored.parent_block_hash = parent
            events.append(common_pb2.KvCacheEvent(event_id=ev.event_id, stored=stored))
        elif ev.kind == "removed":
            removed = common_pb2.KvBlocksRemoved(block_hashes=ev.block_hashes)
            events.append(common_pb2.KvCacheEvent(event_id=ev.event_id, removed=removed))
        else:
            events.append(
                common_pb2.KvCacheEvent(event_id=ev.event_id, cleared=common_pb2.KvCacheCleared())
            )
    return common_pb2.KvEventBatch(
        sequence_number=batch.sequence_number, timestamp=batch.timestamp, events=events
    )


_LOAD_FIELDS = (
    "num_running_reqs",
    "num_waiting_reqs",
    "num_total_reqs",
    "num_used_tokens",
    "max_total_num_tokens",
    "token_usage",
    "gen_throughput",
    "cache_hit_rate",
    "utilization",
    "max_running_requests",
)


def core_load_fields(loads: dict[str, Any]) -> dict[str, Any]:
    """The SchedulerLoad fields 1-11 both protos share, from ``Engine.loads()``."""
    out: dict[str, Any] = {"dp_rank": 0}
    for name in _LOAD_FIELDS:
        value = loads[name]
        out[name] = min(int(value), 2**31 - 1) if isinstance(value, int) else float(value)
    return out


def loads_header() -> dict[str, Any]:
    now = datetime.datetime.now(datetime.timezone.utc)
    return {"timestamp": now.isoformat(), "version": __version__, "dp_rank_count": 1}


def json_safe(value: Any) -> Any:
    """A value a protobuf Struct accepts (non-JSON values become strings)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return str(value)
