"""What gRPC mode keeps per worker and per model.

``GrpcBackend`` owns one ``GrpcWorkerClient`` per worker URL (engine detected with the
HealthCheck rpc: SGLang first, then vLLM) and one ``ModelRuntime`` per model: the
tokenizer (from ``--tokenizer-path``, else fetched from the worker with GetTokenizer so
gateway and engine cannot disagree), its detokenizer table, EOS ids and the parsers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc

from smg._fast.detok import DetokTable
from smg.clients.grpc import GrpcWorkerClient, make_client
from smg.parsers import pick_parsers
from smg.parsers.reasoning import ThinkParser, get_reasoning_parser
from smg.parsers.tools import MarkerToolParser, get_tool_parser
from smg.tokenizer import Tokenizer, load_tokenizer, load_tokenizer_from_zip
from smg.tokenizer.cache import CachedEncoder

__all__ = ["GrpcBackend", "GrpcSettings", "ModelRuntime", "is_grpc_url"]

log = logging.getLogger(__name__)


def is_grpc_url(url: str) -> bool:
    return url.startswith(("grpc://", "grpcs://"))


@dataclass(frozen=True)
class GrpcSettings:
    tokenizer_path: str | None = None
    chat_template: str | None = None
    reasoning_parser: str | None = None
    tool_call_parser: str | None = None
    grpc_client: str = "lean"

    @classmethod
    def from_config(cls, model: object) -> GrpcSettings:
        """From ``GatewayConfig.model`` (smg.config.ModelSettings)."""
        return cls(
            getattr(model, "tokenizer_path", None) or getattr(model, "model_path", None),
            getattr(model, "chat_template", None),
            getattr(model, "reasoning_parser", None),
            getattr(model, "tool_call_parser", None),
            getattr(model, "grpc_client", "lean"),
        )


@dataclass
class ModelRuntime:
    model: str
    tokenizer: Tokenizer
    table: DetokTable
    reasoning: ThinkParser | None
    tools: MarkerToolParser | None
    encoder: CachedEncoder | None = None  # exact-match + marker-prefix encode cache
    reasoning_uses_specials: bool = False  # keep special tokens so the parser sees markers


def uses_special_tokens(tok: Tokenizer, *markers: str) -> bool:
    """Whether any marker is, or contains, a special token (dropped by skip_special_tokens)."""
    special = tok.special_token_ids
    return any(m and set(tok.encode(m, False)) & special for m in markers)


class GrpcBackend:
    def __init__(self, settings: GrpcSettings) -> None:
        self.settings = settings
        self.clients: dict[str, GrpcWorkerClient] = {}
        self.models: dict[str, ModelRuntime] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        self._served: dict[str, str] = {}  # url -> model, once its runtime is loaded

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients.values()), return_exceptions=True)
        self.clients.clear()

    async def connect(self, url: str) -> tuple[GrpcWorkerClient, str | None]:
        """Client for ``url`` and the model it serves (None when it does not answer)."""
        if url in self.clients:
            client = self.clients[url]
            model = await self._served_model(client)
            if model is not None:
                await self.runtime_for(model, client)
                self._served[url] = model
            return client, model
        transport = self.settings.grpc_client
        for proto in ("sglang", "vllm"):
            client = make_client(url, proto, transport)
            try:
                await client._stub.HealthCheck(client._pb.HealthCheckRequest(), timeout=5.0)
            except Exception as exc:  # noqa: BLE001 - unreachable workers surface many ways
                await client.close()
                code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
                if code == grpc.StatusCode.UNIMPLEMENTED:
                    continue
                # unreachable or unhealthy: keep an SGLang client, health checks decide
                client = make_client(url, "sglang", transport)
                self.clients[url] = client
                return client, None
            self.clients[url] = client
            model = await self._served_model(client)
            if model is not None:
                await self.runtime_for(model, client)
                self._served[url] = model
            return client, model
        raise ValueError(f"{url} serves neither SglangScheduler nor VllmEngine")

    async def _served_model(self, client: GrpcWorkerClient) -> str | None:
        try:
            info = await client.model_info()
        except Exception:  # noqa: BLE001 - any failure means "not known yet"
            return None
        return info.get("served_model_name") or info.get("model_path") or None

    def client(self, url: str) -> GrpcWorkerClient:
        return self.clients[url]

    def runtime(self, model: str | None) -> ModelRuntime | None:
        if model is not None and model in self.models:
            return self.models[model]
        if len(self.models) == 1 and model in (None, ""):
            return next(iter(self.models.values()))
        return None

    async def runtime_for(self, model: str, client: GrpcWorkerClient) -> ModelRuntime:
        """Load (once) the tokenizer and parsers for ``model``."""
        if model in self.models:
            return self.models[model]
        lock = self._loading.setdefault(model, asyncio.Lock())
        async with lock:
            if model in self.models:
                return self.models[model]
            s = self.settings
            if s.tokenizer_path:
                tok = await asyncio.to_thread(load_tokenizer, s.tokenizer_path, chat_template=s.chat_template)
            else:
                data, sha = await client.get_tokenizer_zip()
                tok = await asyncio.to_thread(
                    load_tokenizer_from_zip, data, sha256=sha or None, name=f"{model} (from worker)",
                    chat_template=s.chat_template,
                )
            table = DetokTable.from_hf(tok.hf) if tok.hf is not None else DetokTable.from_tiktoken(tok.tiktoken)
            # the flags win; else what the chat template writes, then the model id
            template = tok.chat_template.source if tok.chat_template is not None else None
            pick = pick_parsers(model, chat_template=template)
            rname = s.reasoning_parser or pick.reasoning
            tname = s.tool_call_parser or pick.tool
            runtime = ModelRuntime(
                model,
                tok,
                table,
                get_reasoning_parser(rname) if rname else None,
                get_tool_parser(tname) if tname else None,
                CachedEncoder(tok, capacity=4096, prefix_bytes=64 << 20, exact_bytes=128 << 20),
            )
            if runtime.reasoning is not None:
                r = runtime.reasoning
                runtime.reasoning_uses_specials = uses_special_tokens(tok, getattr(r, "start", ""), getattr(r, "end", ""))
            self.models[model] = runtime
            log.info("model %s: tokenizer %r, reasoning=%s, tools=%s (%s)", model, tok, rname, tname,
                     "; ".join(f"{k}: {v}" for k, v in pick.why.items()))
            return runtime

    async def probe(self, url: str, timeout: float) -> bool:
        """Health check; a worker that was down at registration gets its model loaded."""
        client = self.clients.get(url)
        if client is None:
            return False
        healthy = await client.health(timeout)
        if healthy and url not in self._served:
            try:
                await self.connect(url)
            except Exception:  # noqa: BLE001 - a broken worker stays unhealthy
                log.exception("worker %s: cannot load its model", url)
                return False
        return healthy
