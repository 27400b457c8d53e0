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
from smg.config.sections import (
    BreakerSettings,
    HealthSettings,
    ModelSettings,
    PDSettings,
    RetrySettings,
    RoutingConfig,
    ServerConfig,
)
from smg.config.reliability import ReliabilitySettings
from smg.config.history import HistorySettings
from smg.config.discovery import DiscoverySettings
from smg.config.security import SecuritySettings

if typing.TYPE_CHECKING:
    from smg.router import PolicyConfig

__all__ = ["ENV_PREFIX", "GatewayConfig", "setting_keys"]

ENV_PREFIX = "SMG_"


@dataclass(frozen=True)
class GatewayConfig:
    """Everything ``smg serve`` needs, passed down as one value."""

    server: ServerConfig = field(default_factory=ServerConfig, metadata={"title": "Server"})
    routing: RoutingConfig = field(default_factory=RoutingConfig, metadata={"title": "Routing"})
    retry: RetrySettings = field(default_factory=RetrySettings, metadata={"title": "Retries"})
    breaker: BreakerSettings = field(default_factory=BreakerSettings, metadata={"title": "Circuit breaker"})
    health: HealthSettings = field(default_factory=HealthSettings, metadata={"title": "Health checks"})
    pd: PDSettings = field(default_factory=PDSettings, metadata={"title": "Prefill/decode"})
    model: ModelSettings = field(default_factory=ModelSettings, metadata={"title": "Model and tokenizer (gRPC mode)"})
    security: SecuritySettings = field(default_factory=SecuritySettings, metadata={"title": "Security"})
    history: HistorySettings = field(
        default_factory=HistorySettings, metadata={"title": "History (Responses and Conversations)"}
    )
    reliability: ReliabilitySettings = field(
        default_factory=ReliabilitySettings, metadata={"title": "Timeouts, admission and limits"}
    )
    discovery: DiscoverySettings = field(
        default_factory=DiscoverySettings, metadata={"title": "Service discovery (Kubernetes)"}
    )

    def grpc_mode(self) -> bool:
        """True when the workers are gRPC (``grpc://``) workers: full server mode."""
        urls = (*self.routing.worker_urls, *self.pd.decode)
        discovered = self.discovery.service_discovery and self.discovery.discovery_scheme == "grpc"
        return discovered or any(u.startswith(("grpc://", "grpcs://")) for u in urls)

    def policy_config(self) -> PolicyConfig:
        from smg.router import PolicyConfig

        r = self.routing
        return PolicyConfig(
            cache_threshold=r.cache_threshold,
            balance_abs_threshold=r.balance_abs_threshold,
            balance_rel_threshold=r.balance_rel_threshold,
            eviction_interval_secs=r.eviction_interval_secs,
            max_tree_size=r.max_tree_size,
            max_tree_total=self.reliability.max_tree_total_size,  # issue 15: a global cap
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
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ValueError(f"{p} is not valid TOML: {exc}") from None
        elif p.suffix in (".yaml", ".yml"):
            import yaml

            try:
                data = yaml.safe_load(text) or {}
            except yaml.YAMLError as exc:
                where = getattr(exc, "problem_mark", None)
                at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
                raise ValueError(f"{p} is not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
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


def setting_keys() -> Iterator[str]:
    """Every setting's key: its flag without dashes, as in ``SMG_<KEY>`` and config files."""
    return (leaf.key for leaf in _leaves())


def _apply(config: GatewayConfig, updates: Mapping[tuple[str, str], Any]) -> GatewayConfig:
    by_section: dict[str, dict[str, Any]] = {}
    for (section, name), value in updates.items():
        by_section.setdefault(section, {})[name] = value
    changes = {
        section: dataclasses.replace(getattr(config, section), **values)
        for section, values in by_section.items()
    }
    return dataclasses.replace(config, **changes) if changes else config
