"""``sglang.grpc.scheduler.SglangScheduler`` served by the reference engine.

Semantics follow the SGLang gRPC servicer the SMG gateway talks to: ``tokenized`` is
required; a streamed request gets one ``chunk`` per engine step (new token ids,
cumulative counts) and, per choice, a ``complete`` whose ``output_ids`` is the last
step's slice; a non-streamed one gets one ``complete`` per choice with all output ids.
Errors are gRPC status codes. A per-request fault comes from the metadata key
``x-smg-fault`` or ``sampling_params.custom_params["smg_fault"]``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import grpc
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from smg import __version__
from smg._proto import common_pb2, sglang_scheduler_pb2 as pb, sglang_scheduler_pb2_grpc
from smg.engine.core import Engine, EngineError, GenerateInput, SamplingParams
from smg.engine.grpc.common import (
    core_load_fields,
    event_batch_pb,
    json_safe,
    loads_header,
    metadata_fault,
    tokenizer_chunks,
)
from smg.engine.grpc.generate import GenerateMixin

__all__ = ["SglangServicer", "add_to_server"]


class SglangServicer(GenerateMixin, sglang_scheduler_pb2_grpc.SglangSchedulerServicer):
    _pb = pb

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._loras: dict[str, pb.LoadedLoRAAdapter] = {}

    # -- Generate ----------------------------------------------------------------------
    def _input(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext) -> GenerateInput:
        if not request.HasField("tokenized"):
            raise EngineError(400, "GenerateRequest.tokenized is required (token ids in)")
        sp = request.sampling_params
        extra = {}
        if sp.HasField("custom_params"):
            extra = json_format.MessageToDict(sp.custom_params)
        params = SamplingParams(
            max_new_tokens=sp.max_new_tokens if sp.HasField("max_new_tokens") else None,
            stop_token_ids=tuple(sp.stop_token_ids),
            stop=tuple(sp.stop),
            ignore_eos=sp.ignore_eos,
            min_new_tokens=sp.min_new_tokens,
            n=sp.n or 1,
            skip_special_tokens=sp.skip_special_tokens,
            no_stop_trim=sp.no_stop_trim,
            stream_interval=(
                sp.stream_interval
                if sp.HasField("stream_interval") and sp.stream_interval > 0
                else None
            ),
            temperature=sp.temperature,
            top_p=sp.top_p,
            top_k=sp.top_k,
            min_p=sp.min_p,
            frequency_penalty=sp.frequency_penalty,
            presence_penalty=sp.presence_penalty,
            repetition_penalty=sp.repetition_penalty,
            extra=extra,
        )
        inp = GenerateInput(
            rid=request.request_id,
            input_ids=list(request.tokenized.input_ids),
            params=params,
            stream=request.stream,
            fault=metadata_fault(context) or extra.get("smg_fault"),
            return_logprob=request.return_logprob,
            top_logprobs=request.top_logprobs_num if request.return_logprob else 0,
        )
        if request.HasField("disaggregated_params"):
            dp = request.disaggregated_params
            inp.bootstrap_host = dp.bootstrap_host or None
            inp.bootstrap_port = dp.bootstrap_port or None
            inp.bootstrap_room = dp.bootstrap_room
        return inp

    # -- control -------------------------------------------------------------------------
    async def Abort(self, request, context) -> pb.AbortResponse:  # noqa: N802
        found = self.engine.abort(request.request_id)
        return pb.AbortResponse(
            success=found, message="aborted" if found else f"no such request {request.request_id!r}"
        )

    async def HealthCheck(self, request, context) -> pb.HealthCheckResponse:  # noqa: N802
        healthy = self.engine.is_healthy()
        return pb.HealthCheckResponse(
            healthy=healthy, message="ok" if healthy else "unhealthy (injected fault)"
        )

    async def FlushCache(self, request, context) -> common_pb2.FlushCacheResponse:  # noqa: N802
        deadline = time.monotonic() + max(request.timeout_s, 0.0)
        while not self.engine.flush_cache():
            if time.monotonic() >= deadline:
                return common_pb2.FlushCacheResponse(
                    success=False, message="requests in flight; cache not flushed"
                )
            await asyncio.sleep(0.01)
        return common_pb2.FlushCacheResponse(success=True, message="cache flushed")

    async def StartProfile(self, request, context) -> common_pb2.ProfileResponse:  # noqa: N802
        return common_pb2.ProfileResponse(success=True, message="reference engine: no profiler")

    async def StopProfile(self, request, context) -> common_pb2.ProfileResponse:  # noqa: N802
        return common_pb2.ProfileResponse(success=True, message="reference engine: no profiler")

    async def Embed(self, request, context) -> pb.EmbedResponse:  # noqa: N802
        ids = list(request.tokenized.input_ids)
        if not ids:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "tokenized.input_ids is empty")
        digest = hashlib.sha256(str(ids).encode()).digest()
        vec = [(b - 127.5) / 127.5 for b in digest[:16]]
        return pb.EmbedResponse(embedding_dim=len(vec), embedding=vec, prompt_tokens=len(ids))

    # -- LoRA: bookkeeping only (the reference model has no weights) ---------------------
    async def LoadLoRAAdapter(self, request, context) -> pb.LoadLoRAAdapterResponse:  # noqa: N802
        lora_id = request.lora_id or request.lora_name
        self._loras[lora_id] = pb.LoadedLoRAAdapter(
            lora_id=lora_id, lora_name=request.lora_name, lora_path=request.lora_path,
            pinned=request.pinned,
        )
        return pb.LoadLoRAAdapterResponse(success=True, loaded_lora_ids=list(self._loras))

    async def UnloadLoRAAdapter(self, request, context) -> pb.UnloadLoRAAdapterResponse:  # noqa: N802
        key = request.lora_id or next(
            (k for k, v in self._loras.items() if v.lora_name == request.lora_name), ""
        )
        found = self._loras.pop(key, None) is not None
        return pb.UnloadLoRAAdapterResponse(
            success=found, message="" if found else "not loaded", loaded_lora_ids=list(self._loras)
        )

    async def ListLoadedLoRAAdapters(self, request, context):  # noqa: N802
        return pb.ListLoadedLoRAAdaptersResponse(loaded_adapters=list(self._loras.values()))

    # -- reports ---------------------------------------------------------------------------
    async def GetModelInfo(self, request, context) -> pb.GetModelInfoResponse:  # noqa: N802
        info = self.engine.model_info()
        return pb.GetModelInfoResponse(
            model_path=info["model_path"],
            tokenizer_path=info["tokenizer_path"],
            is_generation=True,
            served_model_name=info["served_model_name"],
            max_context_length=info["max_context_length"],
            vocab_size=info["vocab_size"],
            supports_vision=False,
            model_type=info["model_type"],
            eos_token_ids=info["eos_token_ids"],
            pad_token_id=info["pad_token_id"],
            bos_token_id=info["bos_token_id"],
            max_req_input_len=info["max_req_input_len"],
            architectures=info["architectures"],
            default_sampling_params_json=info["default_sampling_params_json"],
        )

    async def GetServerInfo(self, request, context) -> pb.GetServerInfoResponse:  # noqa: N802
        info = self.engine.server_info()
        args = struct_pb2.Struct()
        args.update(json_safe(info["server_args"]))
        sched = struct_pb2.Struct()
        sched.update(json_safe({k: v for k, v in info.items() if k != "server_args"}))
        start = timestamp_pb2.Timestamp()
        start.FromNanoseconds(int(info["start_time"] * 1e9))
        return pb.GetServerInfoResponse(
            server_args=args,
            scheduler_info=sched,
            active_requests=info["active_requests"],
            is_paused=False,
            last_receive_timestamp=info["last_receive_timestamp"],
            uptime_seconds=info["uptime_seconds"],
            sglang_version=f"smg-reference-{__version__}",
            server_type="grpc",
            start_time=start,
            max_total_num_tokens=min(info["max_total_num_tokens"], 2**31 - 1),
        )

    async def GetLoads(self, request, context) -> pb.GetLoadsResponse:  # noqa: N802
        loads = self.engine.loads()
        load = pb.SchedulerLoad(
            **core_load_fields(loads),
            num_waiting_uncached_tokens=min(loads["num_waiting_uncached_tokens"], 2**31 - 1),
        )
        include = set(request.include)
        every = "all" in include
        if every or "memory" in include:
            load.memory.token_capacity = min(loads["max_total_num_tokens"], 2**31 - 1)
        if every or "queues" in include:
            load.queues.waiting = loads["num_waiting_reqs"]
        if every or "disagg" in include:
            role = self.engine.config.role
            load.disaggregation.mode = role if role != "both" else "null"
        aggregate = pb.AggregateMetrics(
            total_running_reqs=load.num_running_reqs,
            total_waiting_reqs=load.num_waiting_reqs,
            total_reqs=load.num_total_reqs,
            avg_token_usage=load.token_usage,
            avg_throughput=load.gen_throughput,
            avg_utilization=load.utilization,
        )
        return pb.GetLoadsResponse(**loads_header(), loads=[load], aggregate=aggregate)

    async def GetTokenizer(self, request, context):  # noqa: N802
        async for chunk in tokenizer_chunks(self.engine):
            yield chunk

    async def SubscribeKvEvents(self, request, context):  # noqa: N802
        await context.send_initial_metadata(())  # answer at once; events come when they come
        async for batch in self.engine.kv_events(request.start_sequence_number):
            yield event_batch_pb(batch)


def add_to_server(engine: Engine, server: grpc.aio.Server) -> None:
    sglang_scheduler_pb2_grpc.add_SglangSchedulerServicer_to_server(SglangServicer(engine), server)
