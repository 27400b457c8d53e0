"""Request preparation in gRPC mode: template, tokenize, choose parsers, build params."""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass

from smg.clients.grpc_types import GenParams
from smg.errors import BadRequest, ModelNotFound
from smg.parsers.output import ChoiceParser
from smg.parsers.reasoning import ThinkParser
from smg.parsers.tools import get_tool_parser
from smg.parsers.validation import constraint_for, selected_tools
from smg.pipeline.backend import GrpcBackend, ModelRuntime
from smg.pipeline.requests import GenerationRequest
from smg.router import RequestInfo
from smg.tokenizer import TokenizerError

__all__ = ["Prepared", "new_request_id", "prepare"]

# Prompts longer than this are tokenized in a worker thread so the event loop keeps
# serving other streams (HF tokenizers holds the GIL, but the loop still gets turns
# between requests; the GIL-free encoder makes this truly parallel when present).
OFF_LOOP_CHARS = 4096


@dataclass(slots=True)
class Prepared:
    kind: str  # "chat" | "text"
    req: GenerationRequest
    runtime: ModelRuntime
    rid: str
    prompt_text: str
    input_ids: list[int]
    info: RequestInfo
    reasoning: ThinkParser | None
    tools: list | None
    skip_special_tokens: bool

    def params(self) -> GenParams:
        r = self.req
        p = GenParams(
            request_id=self.rid, input_ids=self.input_ids, original_text=self.prompt_text,
            stream=True, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k, min_p=r.min_p,
            frequency_penalty=r.frequency_penalty, presence_penalty=r.presence_penalty,
            repetition_penalty=r.repetition_penalty, max_new_tokens=r.max_tokens,
            min_new_tokens=r.min_tokens, stop_token_ids=list(r.stop_token_ids), ignore_eos=r.ignore_eos,
            no_stop_trim=r.no_stop_trim, n=r.n, seed=_seed(r.seed), return_logprob=r.logprobs,
            top_logprobs=r.top_logprobs,
        )
        schema = constraint_for(self.tools, r.tool_choice, r.response_format) if self.kind == "chat" else None
        if schema is not None:
            p.json_schema = json.dumps(schema)
        return p

    def parser(self) -> ChoiceParser | None:
        rt = self.runtime
        tools = rt.tools if self.tools else None
        if self.tools and _forces_call(self.req.tool_choice):
            # The worker was constrained to a JSON array of calls (constraint_for), so the
            # output is read as JSON whatever the model's own tool-call format is.
            tools = get_tool_parser("json")
        if self.reasoning is None and tools is None:
            return None
        return ChoiceParser(self.reasoning, tools, tool_specs=self.tools,
                            separate_reasoning=self.req.separate_reasoning)

    def stop_token_ids(self) -> set[int]:
        ids = set(self.req.stop_token_ids)
        if not self.req.ignore_eos:
            ids.update(self.runtime.tokenizer.eos_token_ids)
        return ids


def _seed(seed: int | None) -> int | None:
    """The client's (64-bit) seed as the worker protos hold it (int32): folded, so the
    same seed still means the same sampling."""
    if seed is None or -(1 << 31) <= seed < (1 << 31):
        return seed
    return seed & 0x7FFFFFFF


async def _encode(runtime: ModelRuntime, text: str) -> list[int]:
    encode = runtime.encoder.encode if runtime.encoder is not None else runtime.tokenizer.encode
    if len(text) > OFF_LOOP_CHARS:
        return await asyncio.to_thread(encode, text, False)
    return encode(text, False)


# Worker request ids need to be unique, not secret (clients may choose their own rid):
# 128 bits from a private generator seeded from os.urandom (no system call per request,
# unlike uuid4), reseeded in a forked child so processes never share a sequence.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_request_id(kind: str) -> str:
    """A new response/worker request id: ``chatcmpl-`` or ``cmpl-`` and 32 hex digits."""
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + _ids.randbytes(16).hex()


def _forces_call(tool_choice: object) -> bool:
    return tool_choice == "required" or isinstance(tool_choice, Mapping)


def _routing_text(messages: list[dict]) -> str:
    return " ".join([str(m.get("content") or "") for m in messages])


async def prepare(
    kind: str, req: GenerationRequest, backend: GrpcBackend, headers: Mapping[str, str], request_id: str | None
) -> Prepared:
    runtime = backend.runtime(req.model)
    if runtime is None:
        raise ModelNotFound(f"model {req.model!r} is not served here", param="model")
    rid = req.rid or new_request_id(kind)
    tools = None
    reasoning = runtime.reasoning
    if kind == "chat":
        try:
            tools = selected_tools(req.tools, req.tool_choice) if req.tools else None
        except ValueError as exc:
            raise BadRequest(str(exc), param="tool_choice") from None
        kwargs = dict(req.template_kwargs)
        try:
            prompt = runtime.tokenizer.apply_chat_template(
                req.messages or [], tools=req.tools or None, add_generation_prompt=not req.continue_final_message,
                continue_final_message=req.continue_final_message, chat_template_kwargs=kwargs,
            )
        except TokenizerError as exc:
            raise BadRequest(f"chat template: {exc}", param="messages") from None
        ids = await _encode(runtime, prompt)
        if reasoning is not None and prompt.rstrip().endswith(reasoning.start):
            reasoning = reasoning.started()  # the template opened the thinking block
        info_text = _routing_text(req.messages or [])
    else:
        reasoning = None
        if isinstance(req.prompt, list):
            ids = list(req.prompt)
            if any(i >= runtime.tokenizer.vocab_size for i in ids):
                raise BadRequest("'prompt' has token ids outside the vocabulary", param="prompt")
            prompt = runtime.tokenizer.decode(ids, skip_special_tokens=False)
        else:
            prompt = req.prompt or ""
            ids = await _encode(runtime, prompt)
        info_text = prompt
    if not ids:
        raise BadRequest("the prompt is empty after tokenization", param="prompt")
    skip = req.skip_special_tokens
    if tools:
        skip = False  # tool-call markers may be special tokens
    if reasoning is not None and runtime.reasoning_uses_specials:
        skip = False  # the reasoning markers are (or contain) special tokens
    info = RequestInfo(text=info_text, token_ids=ids, headers=headers, model=runtime.model, user=req.user)
    return Prepared(kind, req, runtime, rid, prompt, ids, info, reasoning, tools, skip)
