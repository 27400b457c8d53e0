"""``vllm.grpc.engine.VllmEngine`` served by the reference engine.

Differences from SGLang that the wire shows: ``GenerateResponse`` has no request id,
input may be ``tokenized`` or ``text``, ``logprobs`` is a count, ``Abort`` takes a list,
and PD goes through ``kv_transfer_params_json``: a prefill worker returns it in
``GenerateComplete``, a decode worker requires it. Per-request faults come from the
metadata key ``x-smg-fault``.
"""

from __future__ import annotations

import json

import grpc

from smg._proto import vllm_engine_pb2 as pb, vllm_engine_pb2_grpc
from smg.engine.core import Engine, EngineError, GenerateInput, SamplingParams
from smg.engine.grpc.common import (
    core_load_fields,
    event_batch_pb,
    loads_header,
    metadata_fault,
    tokenizer_chunks,
)
from smg.engine.grpc.generate import GenerateMixin

__all__ = ["VllmServicer", "add_to_server"]


class VllmServicer(GenerateMixin, vllm_engine_pb2_grpc.VllmEngineServicer):
    _pb = pb
    _REQUEST_ID = False  # vLLM's GenerateResponse has no request id
    _INPUT_LOGPROBS = False  # prompt logprobs are a separate vLLM parameter
    _KV_JSON = True

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _input(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext) -> GenerateInput:
        which = request.WhichOneof("input")
        if which == "tokenized":
            ids = list(request.tokenized.input_ids)
        elif which == "text":
            ids = self.engine.tokenizer.encode(request.text)
        else:
            raise EngineError(400, "GenerateRequest needs tokenized or text input")
        sp = request.sampling_params
        params = SamplingParams(
            max_new_tokens=sp.max_tokens if sp.HasField("max_tokens") else None,
            stop_token_ids=tuple(sp.stop_token_ids),
            stop=tuple(sp.stop),
            ignore_eos=sp.ignore_eos,
            min_new_tokens=sp.min_tokens,
            n=sp.n or 1,
            skip_special_tokens=sp.skip_special_tokens,
            temperature=sp.temperature if sp.HasField("temperature") else 1.0,
            top_p=sp.top_p,
            top_k=sp.top_k or -1,
            min_p=sp.min_p,
            frequency_penalty=sp.frequency_penalty,
            presence_penalty=sp.presence_penalty,
            repetition_penalty=sp.repetition_penalty,
            seed=sp.seed if sp.HasField("seed") else None,
        )
        kv = None
        if request.HasField("kv_transfer_params_json") and request.kv_transfer_params_json:
            try:
                kv = json.loads(request.kv_transfer_params_json)
            except ValueError:
                raise EngineError(400, "kv_transfer_params_json is not JSON") from None
            if not isinstance(kv, dict):
                raise EngineError(400, "kv_transfer_params_json must be a JSON object")
        elif request.HasField("kv_transfer_params"):
            old = request.kv_transfer_params
            kv = {"do_remote_prefill": True, "remote_host": old.remote_host,
                  "remote_port": old.remote_port}
        logprobs = sp.logprobs if sp.HasField("logprobs") else None
        return GenerateInput(
            rid=request.request_id,
            input_ids=ids,
            params=params,
            stream=request.stream,
            fault=metadata_fault(context),
            kv_transfer_params=kv,
            return_logprob=logprobs is not None,
            top_logprobs=max(logprobs or 0, 0),
        )

    async def Embed(self, request, context) -> pb.EmbedResponse:  # noqa: N802
        import hashlib

        ids = list(request.tokenized.input_ids)
        if not ids:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "tokenized.input_ids is empty")
        digest = hashlib.sha256(str(ids).encode()).digest()
        vec = [(b - 127.5) / 127.5 for b in digest[:16]]
        return pb.EmbedResponse(embedding=vec, prompt_tokens=len(ids), embedding_dim=len(vec))

    async def Abort(self, request, context) -> pb.AbortResponse:  # noqa: N802
        for rid in request.request_ids:
            self.engine.abort(rid)
        return pb.AbortResponse()

    async def HealthCheck(self, request, context) -> pb.HealthCheckResponse:  # noqa: N802
        healthy = self.engine.is_healthy()
        return pb.HealthCheckResponse(
            healthy=healthy, message="ok" if healthy else "unhealthy (injected fault)"
        )

    async def GetModelInfo(self, request, context) -> pb.GetModelInfoResponse:  # noqa: N802
        info = self.engine.model_info()
        return pb.GetModelInfoResponse(
            model_path=info["model_path"],
            is_generation=True,
            max_context_length=info["max_context_length"],
            vocab_size=info["vocab_size"],
            supports_vision=False,
            served_model_name=info["served_model_name"],
            tokenizer_path=info["tokenizer_path"],
            model_type=info["model_type"],
            architectures=info["architectures"],
            eos_token_ids=info["eos_token_ids"],
            pad_token_id=info["pad_token_id"],
            bos_token_id=info["bos_token_id"],
            max_req_input_len=info["max_req_input_len"],
            default_sampling_params_json=info["default_sampling_params_json"],
        )

    async def GetServerInfo(self, request, context) -> pb.GetServerInfoResponse:  # noqa: N802
        info = self.engine.server_info()
        return pb.GetServerInfoResponse(
            active_requests=info["active_requests"],
            is_paused=False,
            last_receive_timestamp=info["last_receive_timestamp"],
            uptime_seconds=info["uptime_seconds"],
            server_type="vllm-grpc",
            kv_connector=info["kv_connector"],
            kv_role=info["kv_role"],
            kv_engine_id=info["kv_engine_id"],
            data_parallel_size=1,
        )

    async def GetLoads(self, request, context) -> pb.GetLoadsResponse:  # noqa: N802
        load = pb.SchedulerLoad(**core_load_fields(self.engine.loads()))
        return pb.GetLoadsResponse(**loads_header(), loads=[load])

    async def GetTokenizer(self, request, context):  # noqa: N802
        async for chunk in tokenizer_chunks(self.engine):
            yield chunk

    async def SubscribeKvEvents(self, request, context):  # noqa: N802
        await context.send_initial_metadata(())  # answer at once; events come when they come
        async for batch in self.engine.kv_events(request.start_sequence_number):
            yield event_batch_pb(batch)


def add_to_server(engine: Engine, server: grpc.aio.Server) -> None:
    vllm_engine_pb2_grpc.add_VllmEngineServicer_to_server(VllmServicer(engine), server)
