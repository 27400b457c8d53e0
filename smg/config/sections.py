"""The sections of :class:`~smg.config.GatewayConfig`, one frozen dataclass each.

Each leaf field is one setting: its flag (``--name`` or ``metadata["flag"]``), its
``SMG_*`` variable and its key in a config file all come from it (see
:mod:`smg.config.gateway`). A new subsystem adds its own section in its own module of
this package and one field in ``GatewayConfig``.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Literal

if typing.TYPE_CHECKING:
    from smg.router import BreakerConfig, HealthConfig, RetryConfig

__all__ = [
    "BreakerSettings",
    "HealthSettings",
    "ModelSettings",
    "PDSettings",
    "RetrySettings",
    "RoutingConfig",
    "ServerConfig",
    "opt",
]


def _policies() -> list[str]:
    from smg.router import policy_names

    return policy_names()


def _reasoning_parsers() -> list[str]:
    from smg.parsers.reasoning import REASONING_PARSERS

    return sorted(REASONING_PARSERS)


def _tool_parsers() -> list[str]:
    from smg.parsers.tools import TOOL_PARSERS

    return sorted(TOOL_PARSERS)


# Rust SMG policies smg does not have yet
_REFUSED_POLICIES = {
    name: f"the {name} policy (Rust SMG) is not supported by smg yet"
    for name in ("passthrough", "manual", "bucket")
}


def opt(default: Any, help: str, flag: str | None = None, **meta: Any) -> Any:
    """A setting: its default, its help line, its flag when not ``--<name>``, and more
    metadata for the CLI (``aliases``, ``metavar``, ``choices``; see smg.cli.fields)."""
    if flag is not None:
        meta["flag"] = flag
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class ServerConfig:
    """Listener and HTTP server settings."""

    host: str = opt("127.0.0.1", "address to listen on (0.0.0.0 or :: for every interface)")
    port: int = opt(30000, "port to listen on")
    server: Literal["uvicorn", "hypercorn"] = opt(
        "uvicorn", "ASGI server: uvicorn (httptools+uvloop) or hypercorn (HTTP/2, h2c)"
    )
    max_payload_size: int = opt(512 * 1024 * 1024, "largest request body in bytes (413 above)")
    request_timeout_secs: float = opt(1800.0, "upstream request timeout (504 when exceeded)")
    connect_timeout_secs: float = opt(10.0, "upstream connect timeout")
    shutdown_grace_period_secs: float = opt(180.0, "time given to in-flight requests on exit")
    log_level: Literal["debug", "info", "warn", "error"] = opt("info", "log level")
    log_json: bool = opt(False, "log one JSON object per line")
    log_dir: str | None = opt(None, "also write the log to smg.log in this directory (rotated daily)")
    access_log: bool = opt(True, "log one line per request at info level")
    workers: int = opt(
        1, "gateway processes serving the port (not inference workers); each process keeps "
        "its own routing state"
    )
    request_id_headers: tuple[str, ...] = opt(
        ("x-request-id", "x-correlation-id", "x-trace-id", "request-id"),
        "headers a request id is taken from (echoed as x-request-id)",
        empty_ok=True,
    )


@dataclass(frozen=True)
class RoutingConfig:
    """Workers and the routing policy."""

    worker_urls: tuple[str, ...] = opt(
        (), "worker base URLs, http(s):// (proxy mode) or grpc(s):// (gRPC mode); none: start "
        "two reference workers", metavar="URL", empty_ok=True,
    )
    policy: str = opt("cache_aware", "routing policy", choices=_policies, refused=_REFUSED_POLICIES)
    cache_threshold: float = opt(
        0.3, "cache_aware: prefix match ratio above which the best match wins",
        aliases=("--cache-match-threshold",),
    )
    balance_abs_threshold: int = opt(
        64, "cache_aware: absolute load gap that counts as imbalance", aliases=("--spill-abs-threshold",)
    )
    balance_rel_threshold: float = opt(
        1.5, "cache_aware: relative load ratio that counts as imbalance", aliases=("--spill-rel-threshold",)
    )
    eviction_interval_secs: float = opt(
        120.0, "cache_aware: seconds between tree evictions", aliases=("--eviction-interval",)
    )
    max_tree_size: int = opt(2**26, "cache_aware: per-worker tree budget")
    block_size: int = opt(16, "cache_aware: block size in tokens")
    prefix_token_count: int = opt(256, "prefix_hash: tokens hashed")
    load_factor: float = opt(1.25, "prefix_hash: load factor", flag="--prefix-hash-load-factor")
    load_monitor_interval: float = opt(5.0, "seconds between /v1/loads polls of each worker")
    disable_load_monitoring: bool = opt(False, "do not poll workers for load reports")
    prefix_tiebreak: bool = opt(
        False,
        "cache_aware: break miss ties by a stable digest of the prompt's start (on by itself "
        "with --workers > 1, so the processes agree)",
        flag="--cache-aware-prefix-tiebreak",
    )


@dataclass(frozen=True)
class RetrySettings:
    """Retries (each attempt goes to a worker not yet tried)."""

    max_retries: int = opt(5, "total attempts per request", flag="--retry-max-retries")
    initial_backoff_ms: int = opt(50, "first backoff", flag="--retry-initial-backoff-ms")
    max_backoff_ms: int = opt(30000, "largest backoff", flag="--retry-max-backoff-ms")
    backoff_multiplier: float = opt(1.5, "backoff growth", flag="--retry-backoff-multiplier")
    jitter_factor: float = opt(0.2, "backoff jitter (+-fraction)", flag="--retry-jitter-factor")
    disable_retries: bool = opt(False, "one attempt per request")

    def to_router(self) -> RetryConfig:
        from smg.router import RetryConfig

        return RetryConfig(
            max_retries=1 if self.disable_retries else max(1, self.max_retries),
            initial_backoff_ms=self.initial_backoff_ms,
            max_backoff_ms=self.max_backoff_ms,
            backoff_multiplier=self.backoff_multiplier,
            jitter_factor=self.jitter_factor,
        )


@dataclass(frozen=True)
class BreakerSettings:
    """Per-worker circuit breaker."""

    failure_threshold: int = opt(10, "consecutive failures that open", flag="--cb-failure-threshold")
    success_threshold: int = opt(3, "half-open successes that close", flag="--cb-success-threshold")
    timeout_duration_secs: float = opt(60.0, "open time", flag="--cb-timeout-duration-secs")
    window_duration_secs: float = opt(
        120.0, "failure window (accepted as in Rust SMG, whose breaker does not use it either)",
        flag="--cb-window-duration-secs",
    )
    disable_circuit_breaker: bool = opt(False, "never open the breaker")

    def to_router(self) -> BreakerConfig:
        from smg.router import BreakerConfig

        return BreakerConfig(
            failure_threshold=self.failure_threshold,
            success_threshold=self.success_threshold,
            timeout_duration_secs=self.timeout_duration_secs,
            enabled=not self.disable_circuit_breaker,
        )


@dataclass(frozen=True)
class HealthSettings:
    """Active health checks (GET <worker><endpoint>, 2xx is healthy)."""

    failure_threshold: int = opt(3, "failures that take a worker out", flag="--health-failure-threshold")
    success_threshold: int = opt(2, "successes that bring it back", flag="--health-success-threshold")
    timeout_secs: float = opt(5.0, "probe timeout", flag="--health-check-timeout-secs")
    interval_secs: float = opt(60.0, "seconds between probes", flag="--health-check-interval-secs")
    endpoint: str = opt("/health", "probe path", flag="--health-check-endpoint")
    disable_health_check: bool = opt(False, "no active health checks")
    remove_unhealthy_workers: bool = opt(
        False, "drop workers whose health reaches failed", aliases=("--worker-auto-recovery",)
    )

    def to_router(self) -> HealthConfig:
        from smg.router import HealthConfig

        return HealthConfig(
            interval_secs=self.interval_secs,
            timeout_secs=self.timeout_secs,
            failure_threshold=self.failure_threshold,
            success_threshold=self.success_threshold,
            endpoint=self.endpoint,
            enabled=not self.disable_health_check,
            remove_unhealthy=self.remove_unhealthy_workers,
        )


@dataclass(frozen=True)
class ModelSettings:
    """gRPC mode: how the gateway tokenizes, templates and parses for its workers."""

    model_path: str | None = opt(
        None, "model directory whose tokenizer the gateway loads (not read when --tokenizer-path "
        "is given)", aliases=("--model",),
    )
    tokenizer_path: str | None = opt(
        None,
        "tokenizer directory or file (tokenizer.json, .tiktoken), or 'deepseek'/'qwen'; wins "
        "over --model-path; default: fetched from the worker with GetTokenizer",
    )
    disable_tokenizer_autoload: bool = opt(
        False, "never fetch the tokenizer from a worker (then --tokenizer-path or --model-path is needed)"
    )
    chat_template: str | None = opt(None, "chat template: a .jinja file, an inline template, or 'chatml'/'deepseek'")
    reasoning_parser: str | None = opt(
        None, "reasoning parser (default: chosen by model name)", choices=_reasoning_parsers
    )
    tool_call_parser: str | None = opt(
        None, "tool-call parser (default: chosen by model name)", choices=_tool_parsers
    )
    grpc_client: Literal["lean", "aio"] = opt(
        "lean", "gRPC client: smg's lean HTTP/2 client, or grpc.aio"
    )


@dataclass(frozen=True)
class PDSettings:
    """Prefill/decode disaggregation: each generating request goes to a (prefill, decode) pair."""

    pd_disaggregation: bool = opt(False, "route chat, completions and generate to prefill/decode pairs")
    prefill: tuple[str, ...] = opt(
        (), "a prefill worker and its KV bootstrap port (repeatable)", metavar="URL [BOOTSTRAP_PORT|none]"
    )
    decode: tuple[str, ...] = opt((), "a decode worker (repeatable)", metavar="URL")
    prefill_policy: str | None = opt(
        None, "routing policy of the prefill pool (default: --policy)", choices=_policies,
        refused=_REFUSED_POLICIES,
    )
    decode_policy: str | None = opt(
        None, "routing policy of the decode pool (default: --policy)", choices=_policies,
        refused=_REFUSED_POLICIES,
    )
    pd_style: Literal["auto", "sglang", "vllm"] = opt(
        "auto", "HTTP PD handshake: sglang (bootstrap rooms), vllm (kv_transfer_params), or auto "
        "(asked of each prefill worker); gRPC workers go by their protocol"
    )

    def prefill_workers(self) -> list[tuple[str, int | None]]:
        """``--prefill`` values as (url, bootstrap port or None): each URL may be followed
        by its port or ``none``, as SMG parses them."""
        out: list[tuple[str, int | None]] = []
        for item in self.prefill:
            if "://" in item:
                out.append((item, None))
            elif out and out[-1][1] is None and (item.isdigit() or item.lower() == "none"):
                out[-1] = (out[-1][0], int(item) if item.isdigit() else None)
            else:
                raise ValueError(f"--prefill: {item!r} is neither a worker URL nor the bootstrap port after one")
        return out
