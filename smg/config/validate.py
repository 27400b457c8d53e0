"""Checks of a whole :class:`~smg.config.GatewayConfig` before the gateway starts:
:func:`problems` (each one stops ``smg serve`` with one line and exit status 2) and
:func:`warnings` (printed, the gateway still starts)."""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Iterable, Mapping

from smg.config.gateway import ENV_PREFIX, GatewayConfig, setting_keys

__all__ = ["OTHER_ENV_VARS", "check_worker_url", "problems", "warnings"]

WORKER_SCHEMES = ("http", "https", "grpc", "grpcs")

# SMG_* variables that are not settings: build switches, kernel choice, test hooks
OTHER_ENV_VARS = frozenset({
    "SMG_NO_EXTENSIONS", "SMG_DEBUG_BUILD", "SMG_CYTHON_ANNOTATE", "SMG_BUILD_ONLY",
    "SMG_RUST_GATEWAY", "SMG_WHEEL",
})


def check_worker_url(url: str) -> str | None:
    """Why ``url`` cannot be a worker's base URL, or None when it can."""
    if "://" not in url:
        return f"worker URL {url!r} has no scheme: write http://{url} (proxy mode) or grpc://{url} (gRPC mode)"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"worker URL {url!r} is malformed: {exc}"
    if parts.scheme not in WORKER_SCHEMES:
        return f"worker URL {url!r}: the scheme must be one of {', '.join(WORKER_SCHEMES)}"
    if not parts.hostname:
        return f"worker URL {url!r} names no host"
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return f"worker URL {url!r} has a query or fragment; a worker URL is scheme://host:port[/path]"
    if port == 0:
        return f"worker URL {url!r}: port 0 is not a port a worker listens on"
    return None


def _worker_urls(config: GatewayConfig) -> Iterable[str]:
    yield from config.routing.worker_urls
    if config.pd.pd_disaggregation:
        yield from (item for item in config.pd.prefill if "://" in item or not _is_port(item))
        yield from config.pd.decode


def _is_port(item: str) -> bool:
    return item.isdigit() or item.lower() == "none"


def problems(config: GatewayConfig) -> list[str]:
    """What keeps ``config`` from running, one sentence each (empty: it can run)."""
    from smg.parsers.reasoning import REASONING_PARSERS
    from smg.parsers.tools import TOOL_PARSERS
    from smg.router import create_policy

    found = [why for url in _worker_urls(config) if (why := check_worker_url(url)) is not None]
    try:
        config.pd.prefill_workers()
    except ValueError as exc:
        found.append(str(exc))
    for flag, name in (("--policy", config.routing.policy), ("--prefill-policy", config.pd.prefill_policy),
                       ("--decode-policy", config.pd.decode_policy)):
        if name is not None:
            try:
                create_policy(name)
            except ValueError as exc:
                found.append(f"{flag}: {exc}")
    model = config.model
    if model.reasoning_parser is not None and model.reasoning_parser not in REASONING_PARSERS:
        found.append(f"--reasoning-parser: unknown parser {model.reasoning_parser!r}; "
                     f"choose one of: {', '.join(sorted(REASONING_PARSERS))}")
    if model.tool_call_parser is not None and model.tool_call_parser not in TOOL_PARSERS:
        found.append(f"--tool-call-parser: unknown parser {model.tool_call_parser!r}; "
                     f"choose one of: {', '.join(sorted(TOOL_PARSERS))}")
    source = model.tokenizer_path or model.model_path
    if config.grpc_mode() and model.disable_tokenizer_autoload and not source:
        found.append("--disable-tokenizer-autoload needs --tokenizer-path or --model-path")
    if config.grpc_mode() and source and (why := _tokenizer_problem(source, model.chat_template)):
        flag = "--tokenizer-path" if model.tokenizer_path else "--model-path"
        found.append(f"{flag} {source!r}: cannot load a tokenizer: {why}")
    from smg.config.history import BACKENDS

    if config.history.history_backend not in BACKENDS:
        found.append(f"--history-backend: unknown backend {config.history.history_backend!r}; "
                     f"choose one of: {', '.join(BACKENDS)}")
    for check in (config.security.validate, lambda: config.discovery.validate(config.pd.pd_disaggregation)):
        try:
            check()
        except ValueError as exc:
            found.append(str(exc))
    if config.server.workers < 1:
        found.append("--workers must be at least 1")
    if not 0 <= config.server.port <= 65535:
        found.append(f"--port {config.server.port} is not a TCP port")
    return found


def _tokenizer_problem(source: str, chat_template: str | None) -> str | None:
    """Why the tokenizer at ``source`` cannot be loaded (loading it is the only sure test;
    the gateway loads it again, once per model, when its worker answers)."""
    from smg.tokenizer import load_tokenizer

    try:
        load_tokenizer(source, chat_template=chat_template)
    except Exception as exc:  # noqa: BLE001 - any failure is the user's to see, in one line
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def warnings(config: GatewayConfig, environ: Mapping[str, str]) -> list[str]:
    """Settings that will not do what the user may think, one sentence each."""
    found = []
    keys = set(setting_keys())
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in OTHER_ENV_VARS and name[len(ENV_PREFIX):].lower() not in keys:
            found.append(f"{name} names no smg setting and is ignored")
    if not config.grpc_mode() and (config.routing.worker_urls or config.pd.pd_disaggregation):
        default = type(config.model)()
        for f in dataclasses.fields(config.model):
            if getattr(config.model, f.name) != getattr(default, f.name):
                flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
                found.append(f"{flag} only applies in gRPC mode (grpc:// workers); proxy mode ignores it")
    return found
