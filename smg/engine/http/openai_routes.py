"""``POST /v1/chat/completions`` and ``POST /v1/completions``, as a vLLM/SGLang server.

Chat renders the messages with the tokenizer's chat template (tools and
``chat_template_kwargs`` passed through) and tokenizes without special tokens, since
the template already has them; completions tokenizes text prompts with them (BOS), as
vLLM does. A prompt may be a string, a list of strings, a list of token ids, or a list of
token-id lists (a batch: choice ``i * n + j``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson

from smg.engine.http.asgi import Endpoint, Receive, Scope, Send, header, parse_json, read_body
from smg.engine.http.context import WorkerContext
from smg.engine.http.errors import BadRequest, ModelNotFound
from smg.engine.http.openai_format import ChatFormat, CompletionFormat
from smg.engine.http.params import get_bool, get_dict, get_int, int_list
from smg.engine.http.respond import respond
from smg.engine.http.runner import Run
from smg.engine.http.sampling import (
    Bootstrap,
    EngineOptions,
    build_units,
    openai_sampling,
    request_rid,
)
from smg.tokenizer.errors import TokenizerError

__all__ = ["ChatCompletions", "Completions", "check_model", "engine_options"]

PROMPT_CACHE_SIZE = 1024
FAULT_HEADER = b"x-smg-fault"
REQUEST_ID_HEADER = b"x-request-id"


def check_model(body: dict[str, Any], model: str) -> None:
    """An absent model means the served one (vLLM); another name is a 404."""
    name = body.get("model")
    if name is None or name == model:
        return
    if type(name) is not str:
        raise BadRequest(f"'model' must be a string, got {name!r:.40}", param="model")
    raise ModelNotFound(f"The model `{name}` does not exist; this worker serves `{model}`", param="model")


def engine_options(scope: Scope, body: dict[str, Any], stream: bool) -> EngineOptions:
    return EngineOptions(
        fault=header(scope, FAULT_HEADER),
        kv_transfer_params=get_dict(body, "kv_transfer_params"),
        stream=stream,
    )


def _prefixed(prefix: str, rid: str) -> str:
    return rid if rid.startswith(prefix) else prefix + rid


class _OpenAIEndpoint(Endpoint):
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.engine = ctx.engine
        self.tokenizer = ctx.tokenizer
        self.model = ctx.model


class ChatCompletions(_OpenAIEndpoint):
    """Chat: the rendered and tokenized prompt of recent message lists is kept (LRU), so
    a repeated conversation skips the Jinja template and the tokenizer."""

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        self.prompts: OrderedDict[bytes, list[int]] = OrderedDict()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = parse_json(await read_body(receive))
        check_model(body, self.model)
        input_ids = self._prompt_ids(body)
        params, text = openai_sampling(body)
        stream = get_bool(body, "stream")
        include_usage = get_bool(get_dict(body, "stream_options") or {}, "include_usage")
        opts = engine_options(scope, body, stream)
        if get_bool(body, "logprobs"):
            opts.return_logprob = True
            opts.top_logprobs = get_int(body, "top_logprobs", 0, lo=0, hi=20)
        if not stream:
            params.stop = text.stops  # one engine chunk: let the engine stop there too
        rid = request_rid(body, header(scope, REQUEST_ID_HEADER))
        units = build_units(rid, [input_ids], params, Bootstrap.from_body(body), opts)
        run = Run(rid, self.engine, units, text, self.ctx.table)
        fmt = ChatFormat(
            run,
            _prefixed("chatcmpl-", rid),
            self.model,
            include_usage=include_usage,
            tokenizer=self.tokenizer,
        )
        await respond(run, fmt, stream, receive, send, self.ctx.inflight)

    def _prompt_ids(self, body: dict[str, Any]) -> list[int]:
        messages = body.get("messages")
        if type(messages) is not list or not messages:
            raise BadRequest("'messages' must be a non-empty array of messages", param="messages")
        for i, m in enumerate(messages):
            if type(m) is not dict or type(m.get("role")) is not str:
                raise BadRequest(f"messages[{i}] must be an object with a string 'role'", param="messages")
        tools = body.get("tools")
        if tools is not None and (type(tools) is not list or not all(type(t) is dict for t in tools)):
            raise BadRequest("'tools' must be an array of objects", param="tools")
        if body.get("tool_choice") == "none":
            tools = None
        kwargs = get_dict(body, "chat_template_kwargs") or {}
        add_generation_prompt = get_bool(body, "add_generation_prompt", True)
        continue_final = get_bool(body, "continue_final_message")
        key = orjson.dumps([messages, tools, kwargs, add_generation_prompt, continue_final])
        ids = self.prompts.get(key)
        if ids is not None:
            self.prompts.move_to_end(key)
            return list(ids)
        try:
            prompt = self.tokenizer.apply_chat_template(
                messages,
                tools=tools,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=continue_final,
                **kwargs,
            )
        except TokenizerError as exc:
            raise BadRequest(f"chat template: {exc}", param="messages") from None
        except TypeError as exc:  # e.g. a chat_template_kwargs key that clashes
            raise BadRequest(f"chat template: {exc}", param="chat_template_kwargs") from None
        ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        self.prompts[key] = ids
        if len(self.prompts) > PROMPT_CACHE_SIZE:
            self.prompts.popitem(last=False)
        return list(ids)


class Completions(_OpenAIEndpoint):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = parse_json(await read_body(receive))
        check_model(body, self.model)
        prompts, texts = self._prompts(body)
        params, text = openai_sampling(body)
        stream = get_bool(body, "stream")
        include_usage = get_bool(get_dict(body, "stream_options") or {}, "include_usage")
        opts = engine_options(scope, body, stream)
        logprobs = get_int(body, "logprobs", None, lo=0, hi=20)
        if logprobs is not None:
            opts.return_logprob = True
            opts.top_logprobs = logprobs
        if not stream:
            params.stop = text.stops
        echo = get_bool(body, "echo")
        if echo:
            texts = [t if t is not None else self.tokenizer.decode(ids) for t, ids in zip(texts, prompts)]
        rid = request_rid(body, header(scope, REQUEST_ID_HEADER))
        units = build_units(rid, prompts, params, Bootstrap.from_body(body), opts)
        run = Run(rid, self.engine, units, text, self.ctx.table)
        fmt = CompletionFormat(
            run,
            _prefixed("cmpl-", rid),
            self.model,
            include_usage=include_usage,
            tokenizer=self.tokenizer,
            echo=texts if echo else None,
        )
        await respond(run, fmt, stream, receive, send, self.ctx.inflight)

    def _prompts(self, body: dict[str, Any]) -> tuple[list[list[int]], list[str | None]]:
        prompt = body.get("prompt")
        encode = self.tokenizer.encode
        if type(prompt) is str:
            return [encode(prompt, add_special_tokens=True)], [prompt]
        if type(prompt) is list and prompt:
            if all(type(p) is str for p in prompt):
                return [encode(p, add_special_tokens=True) for p in prompt], list(prompt)
            if all(type(p) is int for p in prompt):
                return [int_list(prompt, "prompt")], [None]
            if all(type(p) is list for p in prompt):
                return [int_list(p, "prompt") for p in prompt], [None] * len(prompt)
        raise BadRequest(
            "'prompt' must be a string, an array of strings, an array of token ids "
            "or an array of token-id arrays (non-empty)",
            param="prompt",
        )
