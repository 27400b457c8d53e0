"""Run the OpenAI-compatible gateway in front of inference workers.

Proxy mode: the workers are OpenAI-compatible HTTP servers (SGLang, vLLM); smg routes
each request to one of them and streams the answer back as it comes:

    smg serve --worker-urls http://127.0.0.1:8001 http://127.0.0.1:8002 --policy cache_aware

gRPC mode: the workers speak SGLang's or vLLM's gRPC engine protocol; smg does the CPU
work itself (chat template, tokenizer, detokenizer, stop strings, reasoning and tool-call
parsing) and sends token ids:

    smg serve --worker-urls grpc://127.0.0.1:30001 --tokenizer-path /models/qwen3

With no --worker-urls, smg starts two reference workers (canned replies, no model) so
that `smg serve` alone gives a gateway to try. Settings come from their defaults, then
--config FILE (TOML or YAML), then SMG_* environment variables (SMG_PORT=8080), then the
flags. The Rust SMG gateway's flags are accepted under the same names; one that smg does
not implement yet is refused by name. `smg launch` is the same command.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from smg.cli.banner import banner, show_url
from smg.cli.fields import add_dataclass_arguments
from smg.cli.reference import ReferenceWorker, spawn_reference_workers
from smg.cli.rust_flags import refuse_unsupported
from smg.config import GatewayConfig
from smg.config.validate import problems, warnings

__all__ = ["ReferenceWorker", "add_arguments", "run", "spawn_reference_workers"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = "smg serve [--worker-urls URL ...] [--policy NAME] [--config FILE] [FLAG ...]"
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="TOML or YAML file with the same settings (flags override it)")
    add_dataclass_arguments(parser, GatewayConfig)
    for action in parser._actions:  # "--port PORT", not "--port SERVER.PORT"
        if action.metavar is None and action.nargs != 0 and not action.choices and "." in action.dest:
            action.metavar = action.dest.rsplit(".", 1)[1].upper()
    refuse_unsupported(parser)


def _fail(message: str) -> int:
    print(f"smg serve: error: {message}", file=sys.stderr, flush=True)
    return 2


def run(args: argparse.Namespace) -> int:
    try:
        config = GatewayConfig.load(file=args.config, args=args)
    except (OSError, ValueError) as exc:
        return _fail(f"bad configuration: {exc}")
    for line in warnings(config, os.environ):
        print(f"smg serve: warning: {line}", file=sys.stderr, flush=True)
    found = problems(config)
    if found:
        return _fail("; ".join(found))
    from smg.serve import StartupError
    from smg.serve import run as serve_run

    spawned: list[ReferenceWorker] = []
    if not config.routing.worker_urls and not config.pd.pd_disaggregation and not config.discovery.service_discovery:
        print("smg serve: no --worker-urls given: starting two reference workers ...", flush=True)
        try:
            spawned = spawn_reference_workers(2)
        except RuntimeError as exc:
            return _fail(str(exc))
        routing = dataclasses.replace(config.routing, worker_urls=tuple(w.url for w in spawned if w.url))
        config = dataclasses.replace(config, routing=routing)

    def ready(url: str, state: object) -> None:
        for worker in state.registry.all():  # type: ignore[attr-defined]
            if worker.status.value != "ready":
                print(f"smg serve: warning: worker {show_url(worker.url)} is not answering yet; "
                      "it gets traffic once a health check passes", file=sys.stderr, flush=True)
        print(banner(url, state, canned=bool(spawned)), flush=True)  # type: ignore[arg-type]

    try:
        serve_run(config, on_ready=ready)
    except OSError as exc:
        return _fail(f"cannot listen on {config.server.host}:{config.server.port}: {exc.strerror or exc}")
    except StartupError as exc:
        return _fail(f"start-up failed: {exc}")
    finally:
        for w in spawned:
            w.stop()
    return 0
