"""``WorkerConfig``: every knob of the reference worker, one typed frozen dataclass.

Each field is also an ``smg worker`` flag (``smg.cli.fields`` turns ``kv_block_size``
into ``--kv-block-size``); the ``help`` metadata is the flag's help text. Simulated
costs default to zero, so by default the worker is as fast as the machine allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FAULTS", "WorkerConfig", "DEFAULT_CYCLE_TEXT"]

# Fault names accepted by --fault and per request (gRPC metadata ``x-smg-fault``, the
# SGLang ``custom_params.smg_fault`` field, the HTTP header ``x-smg-fault``). A request
# fault may carry a number: ``error_mid_stream:8`` (after 8 tokens), ``stall:0``,
# ``slow_first_token:0.5`` (seconds).
FAULTS = (
    "error_before_first",  # the request fails before any token
    "error_mid_stream",  # the request fails after fault_after_tokens tokens
    "disconnect_mid_stream",  # the transport drops the stream after fault_after_tokens tokens
    "stall",  # no more tokens after fault_after_tokens tokens, until aborted
    "slow_first_token",  # the first token comes fault_delay_s late
    "unhealthy",  # the health check reports unhealthy (worker-wide only)
)

DEFAULT_CYCLE_TEXT = (
    "The quick brown fox jumps over the lazy dog. "
    "Le renard brun saute par-dessus le chien paresseux. "
    "敏捷的棕色狐狸跳过了懒狗。 "
    "Быстрая коричневая лиса прыгает через ленивую собаку. "
    "素早い茶色の狐がのろまな犬を飛び越える。 🦊🐕"
)


def _f(default, help: str, **meta):  # noqa: A002 - "help" reads best at the call sites
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class WorkerConfig:
    """The reference worker: a real gRPC/HTTP inference server that generates deterministically."""

    # where and how it serves
    host: str = _f("127.0.0.1", "address to listen on")
    port: int = _f(30001, "port to listen on (0: any free port)")
    transport: Literal["grpc", "http"] = _f("grpc", "wire protocol to serve")
    grpc_proto: Literal["sglang", "vllm"] = _f(
        "sglang", "gRPC service to serve: sglang.grpc.scheduler or vllm.grpc.engine"
    )
    grpc_server: Literal["lean", "aio"] = _f(
        "lean",
        "gRPC server: lean (smg's own HTTP/2 server, little CPU per call and token) or "
        "aio (grpcio's grpc.aio)",
    )
    model: str = _f("smg-reference", "served model name")
    tokenizer: str = _f(
        "deepseek", "tokenizer: a directory or file path, or 'deepseek' / 'qwen' (bundled)"
    )
    chat_template: str | None = _f(None, "chat template file (jinja) overriding the tokenizer's")
    context_length: int = _f(32768, "maximum prompt + output tokens per request")

    # what it generates
    mode: Literal["echo", "cycle", "script"] = _f(
        "cycle",
        "generation: echo the prompt tokens, cycle a fixed text, or a script of "
        "{match: regex on the prompt, output: raw model text} rules",
    )
    cycle_text: str = _f(DEFAULT_CYCLE_TEXT, "text the cycle mode emits (then EOS)")
    script: str | None = _f(None, "script file (JSON or YAML list of {match, output}) for --mode script")
    stream_interval: int = _f(1, "tokens per streamed chunk")

    # prefill / decode disaggregation
    role: Literal["both", "prefill", "decode"] = _f("both", "PD role of this worker")
    pd_style: Literal["sglang", "vllm"] = _f(
        "sglang",
        "PD handshake: sglang (bootstrap host/port/room on both legs) or vllm "
        "(prefill returns kv_transfer_params that decode needs)",
    )
    bootstrap_port: int | None = _f(
        None, "port of the prefill worker's KV bootstrap server (prefill role; 0: any free port)"
    )
    pd_timeout_s: float = _f(10.0, "how long a decode leg waits for its prefill")

    # simulation (zero = as fast as possible)
    kv_block_size: int = _f(16, "tokens per KV cache block (prefix cache granularity)")
    kv_capacity_tokens: int = _f(1_000_000, "KV cache capacity in tokens (LRU beyond it)")
    prefill_us_per_token: float = _f(0.0, "simulated prefill time per uncached prompt token (µs)")
    decode_us_per_token: float = _f(0.0, "simulated decode time per output token (µs)")
    max_running: int = _f(256, "requests decoded at once; more wait in a queue")

    # fault injection
    fault: str | None = _f(None, "inject a fault into every request: " + ", ".join(FAULTS))
    fault_after_tokens: int = _f(4, "tokens sent before a mid-stream fault")
    fault_delay_s: float = _f(2.0, "delay of slow_first_token (seconds)")

    def __post_init__(self) -> None:
        if self.kv_block_size < 1:
            raise ValueError("kv_block_size must be >= 1")
        if self.max_running < 1:
            raise ValueError("max_running must be >= 1")
        if self.stream_interval < 1:
            raise ValueError("stream_interval must be >= 1")
        if self.fault is not None and self.fault.split(":")[0] not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; one of {', '.join(FAULTS)}")
        if self.mode == "script" and not self.script:
            raise ValueError("--mode script needs --script FILE")
