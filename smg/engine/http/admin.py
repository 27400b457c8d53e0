"""Everything but generation: models, health, info, loads, metrics, cache, abort.

The routes and shapes of an SGLang HTTP server (``/health``, ``/health_generate``,
``/get_model_info``, ``/get_server_info``, ``/v1/loads``, ``/get_load``, ``/metrics``,
``/flush_cache``, ``/abort_request``) plus OpenAI's ``/v1/models``, and one route of our
own for tests and operators: ``GET /smg/aborted_rids`` (the engine's recent aborts).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any, ClassVar

import orjson

from smg import __version__
from smg.engine.http.asgi import (
    PROMETHEUS_HEADERS,
    TEXT_HEADERS,
    Endpoint,
    Receive,
    Scope,
    Send,
    header,
    parse_json,
    read_body,
    send_body,
)
from smg.engine.http.errors import BadRequest, Unavailable
from smg.engine.http.openai_routes import FAULT_HEADER
from smg.engine.http.params import get_bool, get_str
from smg.engine.http.sampling import new_rid
from smg.engine.types import EngineError, GenerateInput, SamplingParams

__all__ = [
    "AbortRequest",
    "AbortedRids",
    "FlushCache",
    "GetLoad",
    "Health",
    "HealthGenerate",
    "Loads",
    "Metrics",
    "ModelInfo",
    "Models",
    "ServerInfo",
]

HEALTH_GENERATE_TIMEOUT_S = 20.0


class _Admin(Endpoint):
    methods: ClassVar[tuple[str, ...]] = ("GET",)

    def __init__(self, engine: Any) -> None:
        self.engine = engine


class Models(_Admin):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        cfg = self.engine.config
        card = {
            "id": cfg.model,
            "object": "model",
            "created": int(self.engine.started_at),
            "owned_by": "sglang",
            "root": cfg.model,
            "max_model_len": cfg.context_length,
        }
        await send_body(send, 200, orjson.dumps({"object": "list", "data": [card]}))


def _unhealthy(engine: Any, scope: Scope) -> bool:
    fault = header(scope, FAULT_HEADER)
    return not engine.is_healthy() or (fault is not None and fault.split(":")[0] == "unhealthy")


class Health(_Admin):
    """200 with an empty body while healthy (SGLang), else 503."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _unhealthy(self.engine, scope):
            raise Unavailable("the worker is unhealthy")
        await send_body(send, 200, b"", TEXT_HEADERS)


class HealthGenerate(_Admin):
    """Health plus one real one-token generation through the engine."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _unhealthy(self.engine, scope):
            raise Unavailable("the worker is unhealthy")
        ids = self.engine.tokenizer.encode("health", add_special_tokens=False) or [0]
        inp = GenerateInput(
            rid=f"HEALTH_CHECK_{new_rid()}",
            input_ids=ids,
            params=SamplingParams(max_new_tokens=1, ignore_eos=True),
            stream=False,
            fault=header(scope, FAULT_HEADER),
        )
        try:
            await asyncio.wait_for(self._drain(inp), HEALTH_GENERATE_TIMEOUT_S)
        except EngineError as exc:
            raise Unavailable(f"health generation failed: {exc.message}") from None
        except asyncio.TimeoutError:
            self.engine.abort(inp.rid)
            raise Unavailable("health generation timed out") from None
        await send_body(send, 200, b"", TEXT_HEADERS)

    async def _drain(self, inp: GenerateInput) -> None:
        async for _ in self.engine.generate(inp):
            pass


class ModelInfo(_Admin):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_body(send, 200, orjson.dumps(self.engine.model_info()))


class ServerInfo(_Admin):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        info = self.engine.server_info()
        info.setdefault("version", __version__)
        await send_body(send, 200, orjson.dumps(info, default=str))


def _load_entry(engine: Any) -> dict[str, Any]:
    return {"dp_rank": 0, **engine.loads()}


class Loads(_Admin):
    """SGLang ``/v1/loads``: one DP rank plus the aggregate."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        load = _load_entry(self.engine)
        body = {
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "version": __version__,
            "dp_rank_count": 1,
            "loads": [load],
            "aggregate": {
                "total_running_reqs": load["num_running_reqs"],
                "total_waiting_reqs": load["num_waiting_reqs"],
                "total_reqs": load["num_running_reqs"] + load["num_waiting_reqs"],
                "avg_token_usage": round(load["token_usage"], 4),
                "avg_throughput": round(load["gen_throughput"], 2),
                "avg_utilization": round(load["utilization"], 4),
            },
        }
        await send_body(send, 200, orjson.dumps(body))


class GetLoad(_Admin):
    """Older SGLang ``/get_load``: a list with one entry per DP rank."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        load = self.engine.loads()
        entry = {
            "dp_rank": 0,
            "num_reqs": load["num_running_reqs"] + load["num_waiting_reqs"],
            "num_waiting_reqs": load["num_waiting_reqs"],
            "num_tokens": load["num_used_tokens"],
        }
        await send_body(send, 200, orjson.dumps([entry]))


# (metric, help, key in engine.loads())
_GAUGES = (
    ("sglang:num_running_reqs", "The number of running requests.", "num_running_reqs"),
    ("sglang:num_queue_reqs", "The number of requests in the waiting queue.", "num_waiting_reqs"),
    ("sglang:num_waiting_reqs", "The number of requests waiting to run.", "num_waiting_reqs"),
    ("sglang:num_used_tokens", "The number of KV tokens in use.", "num_used_tokens"),
    ("sglang:token_usage", "The KV token usage ratio.", "token_usage"),
    ("sglang:cache_hit_rate", "The prefix cache hit rate.", "cache_hit_rate"),
    ("sglang:gen_throughput", "The generation throughput (token/s).", "gen_throughput"),
    ("vllm:num_requests_running", "Number of requests in model execution batches.", "num_running_reqs"),
    ("vllm:num_requests_waiting", "Number of requests waiting to be processed.", "num_waiting_reqs"),
    ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", "token_usage"),
)


class Metrics(_Admin):
    """Prometheus text: SGLang (and vLLM) gauges from the engine's load state."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        load = self.engine.loads()
        label = orjson.dumps(self.engine.config.model).decode()
        lines = []
        for name, help_, key in _GAUGES:
            lines.append(f"# HELP {name} {help_}\n# TYPE {name} gauge\n")
            lines.append(f"{name}{{model_name={label}}} {float(load[key])}\n")
        await send_body(send, 200, "".join(lines).encode(), PROMETHEUS_HEADERS)


class FlushCache(_Admin):
    """SGLang: 200 when flushed, 400 while requests are in flight."""

    methods = ("GET", "POST")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.engine.flush_cache():
            await send_body(send, 200, b"Cache flushed.\n", TEXT_HEADERS)
        else:
            raise BadRequest("Cache not flushed: there are running or waiting requests.")


class AbortRequest(_Admin):
    """SGLang ``{"rid": ..., "abort_all": false}``; a batched request's rid aborts its parts."""

    methods = ("POST",)

    def __init__(self, engine: Any, inflight: dict[str, Any]) -> None:
        super().__init__(engine)
        self.inflight = inflight

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = parse_json(await read_body(receive))
        rid = get_str(body, "rid")
        if get_bool(body, "abort_all"):
            targets = [r for run in list(self.inflight.values()) for r in run.rids]
        elif rid is None:
            raise BadRequest("give 'rid' or 'abort_all': true", param="rid")
        else:
            run = self.inflight.get(rid)
            targets = run.rids if run is not None else [rid]
        aborted = [r for r in targets if self.engine.abort(r)]
        await send_body(send, 200, orjson.dumps({"aborted": aborted}))


class AbortedRids(_Admin):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = {"aborted_rids": list(self.engine.aborted_rids), "time": time.time()}
        await send_body(send, 200, orjson.dumps(body))
