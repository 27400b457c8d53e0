"""What ``smg serve`` prints once the gateway is ready: the URL, the mode, each worker
and its state, the policy, the kernels in use, and a request to try."""

from __future__ import annotations

import os
import urllib.parse
from typing import TYPE_CHECKING

from smg import __version__
from smg._fast import NO_EXTENSIONS, kernel_report

if TYPE_CHECKING:
    from smg.config import GatewayConfig
    from smg.http.state import AppState

__all__ = ["banner", "show_url"]


def show_url(url: str) -> str:
    """``url`` without any user:password in it."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _state_note(status: str) -> str:
    if status == "ready":
        return "ready"
    return f"{status} (not answering yet: it gets traffic once a health check passes)"


def banner(url: str, state: AppState, *, canned: bool) -> str:
    config = state.config
    if config.pd.pd_disaggregation:
        mode = "prefill/decode, " + ("gRPC mode" if config.grpc_mode() else "proxy mode")
    else:
        mode = "gRPC mode: smg tokenizes and detokenizes" if config.grpc_mode() else "proxy mode"
    policy = config.routing.policy
    if config.pd.pd_disaggregation:
        policy = f"prefill {config.pd.prefill_policy or policy}, decode {config.pd.decode_policy or policy}"
    lines = [f"smg {__version__} ready on {url} ({mode}; policy {policy}; {config.server.server})"]
    workers = state.registry.all()
    width = max((len(show_url(w.url)) for w in workers), default=0)
    for w in workers:
        role = "" if w.role.value == "regular" else f"{w.role.value} "
        model = f"  model {w.model_id}" if w.model_id else ""
        lines.append(f"  {role}worker {show_url(w.url):<{width}}  {_state_note(w.status.value)}{model}")
    if not workers:
        lines.append("  no workers yet: add one with POST /workers")
    kernels = kernel_report()
    how = "pure-Python twins (SMG_NO_EXTENSIONS)" if NO_EXTENSIONS else "compiled"
    lines.append(f"  kernels: {how} ({', '.join(f'{k} {v}' for k, v in kernels.items())})")
    if canned:
        lines.append("  the reference workers give canned replies (no model); give --worker-urls for real ones")
    lines.append(f"  history: {_history(config)}")
    lines.extend(f"  {line}" for line in _auth_lines(config))
    key = " -H 'authorization: Bearer <your --api-key>'" if _data_keys(config) else ""
    lines.append("try:")
    lines.append(f"  curl -s {url}/v1/chat/completions -H 'content-type: application/json'{key} "
                 "-d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hello!\"}]}'")
    return "\n".join(lines)


def _history(config: GatewayConfig) -> str:
    h = config.history
    where = {
        "sqlite": lambda: os.path.join(h.sqlite_dir(), "history.db"),
        "memory": lambda: "in this process (lost on exit)",
        "none": lambda: "not stored",
        "postgres": lambda: show_url(h.postgres_db_url or "?"),
        "redis": lambda: show_url(h.redis_url or "?"),
    }.get(h.history_backend, lambda: "?")()
    return f"{h.history_backend} {where}"


def _data_keys(config: GatewayConfig) -> bool:
    return bool(config.security.api_key or config.security.tenant_api_key)


def _auth_lines(config: GatewayConfig) -> list[str]:
    sec = config.security
    lines = []
    if _data_keys(config):
        lines.append("auth: inference routes need an API key (Authorization: Bearer)")
    control = bool(sec.control_plane_api_keys or sec.jwt_issuer)
    loopback = config.server.host in ("127.0.0.1", "::1", "localhost") or config.server.host.startswith("127.")
    if control:
        lines.append("auth: the control plane (/workers, /flush_cache, ...) needs a control-plane key or JWT")
    elif _data_keys(config) or not loopback:
        lines.append("auth: the control plane (/workers, /flush_cache, ...) is refused to everyone: "
                     "give --control-plane-api-keys or --jwt-issuer to use it")
    return lines
