"""The reference engine's gRPC face: ``SglangScheduler`` or ``VllmEngine`` on grpc.aio.

    server, port = await start_grpc_server(engine, config)   # listening
    await run_grpc(engine, config)                           # serve until cancelled
"""

from __future__ import annotations

import asyncio
import sys

import grpc

from smg.engine.config import WorkerConfig
from smg.engine.core import Engine

__all__ = ["start_grpc_server", "run_grpc", "ready_line"]

_MAX_MESSAGE = 256 * 1024 * 1024  # as the SGLang servicer allows
_OPTIONS = [
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.so_reuseport", 0),
    ("grpc.http2.min_ping_interval_without_data_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
]


def ready_line(transport: str, host: str, port: int, model: str, proto: str) -> str:
    return f"smg worker ready: {transport}://{host}:{port} model={model} proto={proto}"


def _servicer(engine: Engine, config: WorkerConfig):
    if config.grpc_proto == "vllm":
        from smg._proto import vllm_engine_pb2 as pb
        from smg.engine.grpc.vllm import VllmServicer

        return VllmServicer(engine), pb.DESCRIPTOR.services_by_name["VllmEngine"]
    from smg._proto import sglang_scheduler_pb2 as pb
    from smg.engine.grpc.sglang import SglangServicer

    return SglangServicer(engine), pb.DESCRIPTOR.services_by_name["SglangScheduler"]


async def start_grpc_server(engine: Engine, config: WorkerConfig):
    """A started server (``config.grpc_server``: the lean HTTP/2 one or grpc.aio) for
    ``config.grpc_proto`` and the port it listens on. Both have ``stop(grace)`` and
    ``wait_for_termination()``."""
    servicer, service = _servicer(engine, config)
    if config.grpc_server == "lean":
        from smg.engine.grpc.h2server import H2GrpcServer

        lean = H2GrpcServer()
        lean.add_servicer(servicer, service)
        return lean, await lean.start(config.host, config.port)
    server = grpc.aio.server(options=_OPTIONS)
    if config.grpc_proto == "vllm":
        from smg._proto.vllm_engine_pb2_grpc import add_VllmEngineServicer_to_server as add
    else:
        from smg._proto.sglang_scheduler_pb2_grpc import add_SglangSchedulerServicer_to_server as add
    add(servicer, server)
    port = server.add_insecure_port(f"{config.host}:{config.port}")
    if port == 0:
        raise OSError(f"cannot listen on {config.host}:{config.port}")
    await server.start()
    return server, port


async def run_grpc(engine: Engine, config: WorkerConfig) -> None:
    """Serve until cancelled; prints the ready line once listening."""
    server, port = await start_grpc_server(engine, config)
    print(ready_line("grpc", config.host, port, config.model, config.grpc_proto), flush=True)
    try:
        await server.wait_for_termination()
    finally:
        await asyncio.shield(server.stop(grace=0.5))
        sys.stdout.flush()
