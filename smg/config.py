"""The gateway's configuration: one typed, frozen :class:`GatewayConfig`.

It is composed of small frozen sections — :class:`ServerConfig`, :class:`RoutingConfig`,
:class:`RetrySettings`, :class:`BreakerSettings`, :class:`HealthSettings` — and built in
layers, each overriding only what it names::

    defaults  <  config file (TOML or YAML)  <  SMG_* environment  <  command-line flags

Every leaf field has one flag name (``--port``, ``--retry-max-retries``,
``--health-check-interval-secs`` ... the same names as SMG's where the idea is the same);
the same name spelled ``SMG_PORT`` / ``SMG_RETRY_MAX_RETRIES`` is its environment variable,
and ``port`` / ``retry_max_retries`` (or the nested ``[retry] max_retries``) its key in a
file. This module is the only place that reads ``SMG_*`` variables.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from smg.cli.fields import dataclass_from_args

if typing.TYPE_CHECKING:
    from smg.router import BreakerConfig, HealthConfig, PolicyConfig, RetryConfig

__all__ = [
    "BreakerSettings",
    "GatewayConfig",
    "HealthSettings",
    "PDSettings",
    "ModelSettings",
    "RetrySettings",
    "RoutingConfig",
    "ServerConfig",
]

ENV_PREFIX = "SMG_"


def _opt(default: Any, help: str, flag: str | None = None, **meta: Any) -> Any:
    if flag is not None:
        meta["flag"] = flag
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class ServerConfig:
    """Listener and HTTP server settings."""

    host: str = _opt("127.0.0.1", "address to listen on")
    port: int = _opt(30000, "port to listen on")
    server: Literal["uvicorn", "hypercorn"] = _opt(
        "uvicorn", "ASGI server: uvicorn (httptools+uvloop) or hypercorn (HTTP/2, h2c)"
    )
    max_payload_size: int = _opt(512 * 1024 * 1024, "largest request body in bytes (413 above)")
    request_timeout_secs: float = _opt(1800.0, "upstream request timeout (504 when exceeded)")
    connect_timeout_secs: float = _opt(10.0, "upstream connect timeout")
    shutdown_grace_period_secs: float = _opt(180.0, "time given to in-flight requests on exit")
    log_level: Literal["debug", "info", "warn", "error"] = _opt("info", "log level")
    workers: int = _opt(
        1, "gateway processes serving the port (SO_REUSEPORT); each keeps its own routing state"
    )
    request_id_headers: tuple[str, ...] = _opt(
        ("x-request-id", "x-correlation-id", "x-trace-id", "request-id"),
        "headers a request id is taken from (echoed as x-request-id)",
    )


@dataclass(frozen=True)
class RoutingConfig:
    """Workers and the routing policy."""

    worker_urls: tuple[str, ...] = _opt(
        (), "worker base URLs; none: start two reference workers", metavar="URL"
    )
    policy: str = _opt("cache_aware", "routing policy name (see smg.router.policy_names())")
    cache_threshold: float = _opt(
        0.3, "cache_aware: prefix match ratio above which the best match wins",
        aliases=("--cache-match-threshold",),
    )
    balance_abs_threshold: int = _opt(64, "cache_aware: absolute load gap that counts as imbalance")
    balance_rel_threshold: float = _opt(1.5, "cache_aware: relative load ratio that counts as imbalance")
    eviction_interval_secs: float = _opt(120.0, "cache_aware: seconds between tree evictions")
    max_tree_size: int = _opt(2**26, "cache_aware: per-worker tree budget")
    block_size: int = _opt(16, "cache_aware: block size in tokens")
    prefix_token_count: int = _opt(256, "prefix_hash: tokens hashed")
    load_factor: float = _opt(1.25, "prefix_hash: load factor", flag="--prefix-hash-load-factor")
    load_monitor_interval: float = _opt(5.0, "seconds between /v1/loads polls of each worker")
    disable_load_monitoring: bool = _opt(False, "do not poll workers for load reports")
    prefix_tiebreak: bool = _opt(
        False,
        "cache_aware: break miss ties by a stable digest of the prompt's start (on by itself "
        "with --workers > 1, so the processes agree)",
        flag="--cache-aware-prefix-tiebreak",
    )


@dataclass(frozen=True)
class RetrySettings:
    """Retries (each attempt goes to a worker not yet tried)."""

    max_retries: int = _opt(5, "total attempts per request", flag="--retry-max-retries")
    initial_backoff_ms: int = _opt(50, "first backoff", flag="--retry-initial-backoff-ms")
    max_backoff_ms: int = _opt(30000, "largest backoff", flag="--retry-max-backoff-ms")
    backoff_multiplier: float = _opt(1.5, "backoff growth", flag="--retry-backoff-multiplier")
    jitter_factor: float = _opt(0.2, "backoff jitter (+-fraction)", flag="--retry-jitter-factor")
    disable_retries: bool = _opt(False, "one attempt per request")

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

    failure_threshold: int = _opt(10, "consecutive failures that open", flag="--cb-failure-threshold")
    success_threshold: int = _opt(3, "half-open successes that close", flag="--cb-success-threshold")
    timeout_duration_secs: float = _opt(60.0, "open time", flag="--cb-timeout-duration-secs")
    disable_circuit_breaker: bool = _opt(False, "never open the breaker")

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

    failure_threshold: int = _opt(3, "failures that take a worker out", flag="--health-failure-threshold")
    success_threshold: int = _opt(2, "successes that bring it back", flag="--health-success-threshold")
    timeout_secs: float = _opt(5.0, "probe timeout", flag="--health-check-timeout-secs")
    interval_secs: float = _opt(60.0, "seconds between probes", flag="--health-check-interval-secs")
    endpoint: str = _opt("/health", "probe path", flag="--health-check-endpoint")
    disable_health_check: bool = _opt(False, "no active health checks")
    remove_unhealthy_workers: bool = _opt(False, "drop workers whose health reaches failed")

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

    tokenizer_path: str | None = _opt(
        None,
        "tokenizer directory or file (tokenizer.json, .tiktoken), or 'deepseek'/'qwen'; "
        "default: fetched from the worker with GetTokenizer",
        aliases=("--model-path",),
    )
    chat_template: str | None = _opt(None, "chat template: a .jinja file, an inline template, or 'chatml'/'deepseek'")
    reasoning_parser: str | None = _opt(None, "reasoning parser (default: chosen by model name)")
    tool_call_parser: str | None = _opt(None, "tool-call parser (default: chosen by model name)")
    grpc_client: Literal["lean", "aio"] = _opt(
        "lean", "gRPC client: smg's lean HTTP/2 client, or grpc.aio"
    )


@dataclass(frozen=True)
class PDSettings:
    """Prefill/decode disaggregation: each generating request goes to a (prefill, decode) pair."""

    pd_disaggregation: bool = _opt(False, "route chat, completions and generate to prefill/decode pairs")
    prefill: tuple[str, ...] = _opt(
        (), "a prefill worker and its KV bootstrap port (repeatable)", metavar="URL [BOOTSTRAP_PORT|none]"
    )
    decode: tuple[str, ...] = _opt((), "a decode worker (repeatable)", metavar="URL")
    prefill_policy: str | None = _opt(None, "routing policy of the prefill pool (default: --policy)")
    decode_policy: str | None = _opt(None, "routing policy of the decode pool (default: --policy)")
    pd_style: Literal["auto", "sglang", "vllm"] = _opt(
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


@dataclass(frozen=True)
class GatewayConfig:
    """Everything ``smg serve`` needs, passed down as one value."""

    server: ServerConfig = field(default_factory=ServerConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    retry: RetrySettings = field(default_factory=RetrySettings)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    pd: PDSettings = field(default_factory=PDSettings)
    model: ModelSettings = field(default_factory=ModelSettings)

    def grpc_mode(self) -> bool:
        """True when the workers are gRPC (``grpc://``) workers: full server mode."""
        urls = (*self.routing.worker_urls, *self.pd.decode)
        return any(u.startswith(("grpc://", "grpcs://")) for u in urls)

    def policy_config(self) -> PolicyConfig:
        from smg.router import PolicyConfig

        r = self.routing
        return PolicyConfig(
            cache_threshold=r.cache_threshold,
            balance_abs_threshold=r.balance_abs_threshold,
            balance_rel_threshold=r.balance_rel_threshold,
            eviction_interval_secs=r.eviction_interval_secs,
            max_tree_size=r.max_tree_size,
            block_size=r.block_size,
            prefix_token_count=r.prefix_token_count,
            load_factor=r.load_factor,
            prefix_tiebreak=r.prefix_tiebreak,
        )

    # -- loaders --------------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: GatewayConfig | None = None) -> GatewayConfig:
        """Apply ``data``: sections (``{"retry": {"max_retries": 3}}``) or flat flag names
        (``{"retry_max_retries": 3}``, ``{"retry-max-retries": 3}``)."""
        updates: dict[tuple[str, str], Any] = {}
        leaves = {leaf.section + "." + leaf.name: leaf for leaf in _leaves()}
        by_key = {leaf.key: leaf for leaf in _leaves()}
        for key, value in data.items():
            if key in _SECTIONS and isinstance(value, Mapping):
                for sub_key, sub_value in value.items():
                    leaf = leaves.get(f"{key}.{str(sub_key).replace('-', '_')}")
                    if leaf is None:
                        raise ValueError(f"unknown setting {key}.{sub_key}")
                    updates[(leaf.section, leaf.name)] = leaf.coerce(sub_value)
                continue
            leaf = by_key.get(str(key).replace("-", "_").lower())
            if leaf is None:
                raise ValueError(f"unknown setting {key!r}; valid: {', '.join(sorted(by_key))}")
            updates[(leaf.section, leaf.name)] = leaf.coerce(value)
        return _apply(base or cls(), updates)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], base: GatewayConfig | None = None) -> GatewayConfig:
        """Load a ``.toml`` or ``.yaml``/``.yml`` file."""
        p = pathlib.Path(path)
        text = p.read_text()
        if p.suffix == ".toml":
            data = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise ValueError(f"config file must end in .toml, .yaml or .yml: {p}")
        if not isinstance(data, Mapping):
            raise ValueError(f"config file {p} must hold a mapping at top level")
        return cls.from_mapping(data, base)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, base: GatewayConfig | None = None) -> GatewayConfig:
        """Apply ``SMG_<FLAG_NAME>`` variables (``SMG_PORT``, ``SMG_WORKER_URLS=a,b``)."""
        env = os.environ if environ is None else environ
        updates = {}
        for leaf in _leaves():
            raw = env.get(ENV_PREFIX + leaf.key.upper())
            if raw is not None:
                updates[(leaf.section, leaf.name)] = leaf.parse(raw)
        return _apply(base or cls(), updates)

    @classmethod
    def load(
        cls,
        *,
        file: str | os.PathLike[str] | None = None,
        args: argparse.Namespace | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> GatewayConfig:
        """Defaults, then ``file``, then ``SMG_*`` variables, then the flags in ``args``."""
        config = cls()
        if file is not None:
            config = cls.from_file(file, config)
        config = cls.from_env(environ, config)
        if args is not None:
            config = dataclass_from_args(cls, args, config)
        return config


_SECTIONS: dict[str, type] = typing.get_type_hints(GatewayConfig)


@dataclass(frozen=True)
class _Leaf:
    section: str
    name: str
    key: str  # flag name with "_" (port, retry_max_retries)
    tp: Any

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str) and self.tp is not str and typing.get_origin(self.tp) is not Literal:
            return self.parse(value)
        origin = typing.get_origin(self.tp)
        if origin is tuple:
            if isinstance(value, str) or not isinstance(value, list | tuple):
                raise ValueError(f"{self.key}: expected a list, got {value!r}")
            return tuple(str(v) for v in value)
        if origin is Literal:
            if value not in typing.get_args(self.tp):
                raise ValueError(f"{self.key}: {value!r} not one of {typing.get_args(self.tp)}")
            return value
        if self.tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, self.tp) or (self.tp is int and isinstance(value, bool)):
            raise ValueError(f"{self.key}: expected {self.tp.__name__}, got {value!r}")
        return value

    def parse(self, raw: str) -> Any:
        origin = typing.get_origin(self.tp)
        if self.tp is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(f"{self.key}: not a boolean: {raw!r}")
        if origin is tuple:
            return tuple(p for p in raw.replace(",", " ").split() if p)
        if origin is Literal:
            return self.coerce(raw)
        try:
            return self.tp(raw)
        except ValueError:
            raise ValueError(f"{self.key}: expected {self.tp.__name__}, got {raw!r}") from None


def _leaves() -> Iterator[_Leaf]:
    for section, cls in _SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if typing.get_origin(tp) in (typing.Union, types.UnionType):
                tp = next(a for a in typing.get_args(tp) if a is not type(None))
            flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
            yield _Leaf(section, f.name, flag[2:].replace("-", "_"), tp)


def _apply(config: GatewayConfig, updates: Mapping[tuple[str, str], Any]) -> GatewayConfig:
    by_section: dict[str, dict[str, Any]] = {}
    for (section, name), value in updates.items():
        by_section.setdefault(section, {})[name] = value
    changes = {
        section: dataclasses.replace(getattr(config, section), **values)
        for section, values in by_section.items()
    }
    return dataclasses.replace(config, **changes) if changes else config
