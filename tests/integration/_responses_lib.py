"""Gateways for the Responses/Conversations tests: a reference worker in script mode (Qwen3
tokenizer: thinking, hermes tool calls) served over HTTP (proxy mode) and over gRPC, and
a gateway per (mode, history backend) in front of it, driven by the openai client.

``BACKENDS`` lists the history backends the suite runs on; a backend that needs a server
gets its settings from ``backend_settings`` (the storage tests' fixtures start those).
"""

from __future__ import annotations

import asyncio
import json
import threading

import openai

from smg.app import create_app
from smg.config import GatewayConfig, HistorySettings, ModelSettings, RoutingConfig
from smg.engine.config import WorkerConfig
from smg.engine.core import Engine
from smg.serve import ServerThread

from worker_threads import GrpcWorkerThread, tokenizer

MODEL = "qwen3-ref"
REASONING = "\nThe user asks about the weather in Paris.\n"
ARGS = {"city": "Paris", "unit": "celsius"}
TOOL_TEXT = (f"<think>{REASONING}</think>\n\nLet me check.\n"
             f'<tool_call>\n{{"name": "get_weather", "arguments": {json.dumps(ARGS)}}}\n</tool_call>')
TOOLS = [{"type": "function", "name": "get_weather", "description": "the weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                         "required": ["city"]}}]
CONTEXT = 4096  # the worker's context length (truncation tests fill it)
LONG_TOKENS = 3000  # the long reply (background + cancel): seconds at DECODE_US per token
DECODE_US = 1500.0

SCRIPT = [
    {"match": "18 degrees", "output": "It is 18 degrees in Paris."},
    {"match": "weather in Paris\\?", "output": TOOL_TEXT},
    {"match": "pirate[\\s\\S]*What is my name", "output": "Arr, ye be Ada."},
    {"match": "My name is Ada[\\s\\S]*What is my name", "output": "Your name is Ada."},
    {"match": "What is my name", "output": "I do not know your name."},
    {"match": "json please", "output": '{"answer": 42}'},
    {"match": "think about it[\\s\\S]*<think>\\s*</think>", "output": "I answer at once."},
    {"match": "think about it", "output": "<think>two and two</think>The answer is 4."},
    {"match": "count slowly", "output": "one two three four five six seven eight nine ten"},
    {"match": "long story", "output": "word " * LONG_TOKENS},
    {"match": "", "output": "Plain answer."},
]


class HttpWorkerThread:
    """The reference worker's HTTP server on its own loop: ``start()`` -> http://127.0.0.1:PORT."""

    def __init__(self, **config) -> None:
        self.config = WorkerConfig(host="127.0.0.1", port=0, transport="http", **config)
        self.engine = Engine(self.config, tokenizer(self.config.tokenizer))
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True, name="http-worker")

    async def _main(self) -> None:
        from smg.engine.http import run_http

        self.loop = asyncio.get_running_loop()
        await self.engine.start()

        def on_ready(port: int) -> None:
            self.port = port
            self._ready.set()

        self.task = asyncio.ensure_future(run_http(self.engine, self.config, on_ready=on_ready))
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        finally:
            await self.engine.close()

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("the HTTP worker did not start")
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self._thread.join(10)

    wait_for = GrpcWorkerThread.wait_for


def worker_config(script_path: str) -> dict:
    return dict(model=MODEL, tokenizer="qwen", mode="script", script=script_path, context_length=CONTEXT,
                decode_us_per_token=DECODE_US)


def start_worker(mode: str, script_path: str):
    cfg = worker_config(script_path)
    worker = HttpWorkerThread(**cfg) if mode == "proxy" else GrpcWorkerThread(grpc_proto="sglang", **cfg)
    return worker, worker.start()


def gateway(url: str, history: HistorySettings) -> tuple[ServerThread, openai.OpenAI]:
    config = GatewayConfig(
        routing=RoutingConfig(worker_urls=(url,), policy="round_robin", disable_load_monitoring=True),
        model=ModelSettings(reasoning_parser="qwen3", tool_call_parser="qwen"),
        history=history,
    )
    server = ServerThread(create_app(config))
    base = server.start()
    return server, openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=60)


def _backends() -> list[str]:
    """memory, plus each backend whose module (and test server fixtures) are here."""
    import importlib

    out = ["memory"]
    for kind, module, needs_server in (("sqlite", "smg.storage.sqlite", False),
                                       ("postgres", "smg.storage.postgres", True),
                                       ("redis", "smg.storage.redis", True)):
        try:
            importlib.import_module(module)
            if needs_server:
                importlib.import_module("tests.storage_servers")
        except ImportError:
            continue
        out.append(kind)
    return out


BACKENDS = _backends()


def backend_settings(backend: str, request, tmp_path):
    """(settings, cleanup) for a fresh, empty store of ``backend`` (postgres and redis on
    the storage tests' private servers: ``tests.storage_servers``)."""
    if backend == "memory":
        return HistorySettings(history_backend="memory"), lambda: None
    if backend == "sqlite":
        return HistorySettings(history_backend="sqlite", data_dir=str(tmp_path)), lambda: None
    if backend == "postgres":
        server = request.getfixturevalue("postgres_server")
        server.start()
        url = server.create_database()
        return HistorySettings(history_backend="postgres", postgres_db_url=url), lambda: server.drop_database(url)
    if backend == "redis":
        server = request.getfixturevalue("redis_server")
        server.start()
        return HistorySettings(history_backend="redis", redis_url=server.fresh_url()), lambda: None
    raise ValueError(f"no test settings for history backend {backend!r}")
