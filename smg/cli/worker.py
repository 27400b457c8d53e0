"""Run the reference inference worker: a real gRPC (SGLang or vLLM protocol) or HTTP
(OpenAI-compatible) server that generates deterministically from a real tokenizer,
with a simulated batch, prefix KV cache, PD roles and injectable faults.

    smg worker --port 30001                                  # gRPC, SGLang protocol
    smg worker --grpc-proto vllm --mode echo
    smg worker --transport http --port 8001
    smg worker --role prefill --bootstrap-port 8998          # PD, SGLang style
    smg worker --mode script --script replies.yaml           # [{match: regex, output: text}]
    smg worker --fault error_mid_stream --fault-after-tokens 8

Per request, a fault can also be asked for with the gRPC metadata or HTTP header
``x-smg-fault: NAME[:N]``. Once listening it prints one line:
``smg worker ready: <transport>://<host>:<port> model=<model> proto=<proto>``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from smg.cli.fields import add_dataclass_arguments, dataclass_from_args
from smg.engine.config import WorkerConfig

__all__ = ["add_arguments", "run", "serve"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_dataclass_arguments(parser, WorkerConfig)


async def serve(config: WorkerConfig) -> None:
    """Build the engine for ``config`` and serve it until cancelled."""
    from smg.engine.core import Engine
    from smg.tokenizer import load_tokenizer

    # gRPC workers get token ids; only the HTTP face encodes prompts on the hot path
    tokenizer = load_tokenizer(
        config.tokenizer,
        chat_template=config.chat_template,
        fast_encoder=config.transport == "http",
    )
    engine = Engine(config, tokenizer)
    await engine.start()
    try:
        if config.transport == "http":
            from smg.engine.http import run_http

            await run_http(engine, config)
        else:
            from smg.engine.grpc import run_grpc

            await run_grpc(engine, config)
    finally:
        await engine.close()


async def _main(config: WorkerConfig) -> None:
    task = asyncio.ensure_future(serve(config))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, task.cancel)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-POSIX
            pass
    try:
        await task
    except asyncio.CancelledError:
        pass


def run(args: argparse.Namespace) -> int:
    try:
        config = dataclass_from_args(WorkerConfig, args)
    except (TypeError, ValueError) as exc:
        print(f"smg worker: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency of uvicorn[standard]
        runner = asyncio.run
    try:
        runner(_main(config))
    except (OSError, ValueError) as exc:
        print(f"smg worker: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bad tokenizer or script: one clear line, no traceback
        from smg.tokenizer import TokenizerError

        if isinstance(exc, TokenizerError):
            print(f"smg worker: {exc}", file=sys.stderr)
            return 1
        raise
    return 0
