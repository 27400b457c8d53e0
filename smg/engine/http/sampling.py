"""Request bodies to engine inputs: sampling parameters, PD bootstrap fields, units.

A request becomes one or more *units*, each one ``engine.generate`` call:

- chat: one unit with ``n`` choices;
- completions / ``/generate`` with a batch of prompts: one unit per prompt, each with
  ``n`` choices, choice ``i * n + j`` (SGLang/vLLM numbering);
- PD bootstrap arrays (``bootstrap_host/port/room``, injected by a PD router for batched
  requests) give one value per prompt, or one per choice; with one per choice every
  choice is its own unit with ``n = 1``, so each gets its own room.

Stop *strings* stay here (they are matched on the decoded text, see ``text.py``); the
engine gets stop token ids and the rest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from smg.engine.http.errors import BadRequest
from smg.engine.http.params import (
    get_bool,
    get_dict,
    get_float,
    get_int,
    get_str,
    optional_int_list,
    stop_strings,
)
from smg.engine.types import GenerateInput, SamplingParams

__all__ = [
    "Bootstrap",
    "EngineOptions",
    "TextOptions",
    "Unit",
    "build_units",
    "new_rid",
    "openai_sampling",
    "request_rid",
    "sglang_sampling",
]

MAX_N = 128


def new_rid() -> str:
    return os.urandom(16).hex()  # a uuid4's randomness without building a UUID


@dataclass(frozen=True, slots=True)
class TextOptions:
    """How the worker turns a choice's tokens into text."""

    stops: tuple[str, ...] = ()
    include_stop: bool = False
    skip_special_tokens: bool = True


# Sampling fields copied onto SamplingParams when present: (reader, keyword bounds).
# Only the keys a request carries are read, so a typical body costs a few lookups.
_FIELDS: dict[str, tuple[Any, dict[str, Any]]] = {
    "stop_token_ids": (lambda body, key: optional_int_list(body, key), {}),
    "ignore_eos": (get_bool, {}),
    "skip_special_tokens": (get_bool, {"default": True}),
    "temperature": (get_float, {"default": 1.0, "lo": 0.0}),
    "top_p": (get_float, {"default": 1.0, "lo": 0.0, "hi": 1.0}),
    "top_k": (get_int, {"default": -1, "lo": -1}),
    "min_p": (get_float, {"default": 0.0, "lo": 0.0, "hi": 1.0}),
    "frequency_penalty": (get_float, {"default": 0.0, "lo": -2.0, "hi": 2.0}),
    "presence_penalty": (get_float, {"default": 0.0, "lo": -2.0, "hi": 2.0}),
    "repetition_penalty": (get_float, {"default": 1.0, "lo": 0.0}),
    "seed": (get_int, {}),
}


def _common(body: Mapping[str, Any], max_new_tokens: int | None, n: int) -> SamplingParams:
    params = SamplingParams(max_new_tokens=max_new_tokens, n=n)
    fields = _FIELDS
    for key in body:
        spec = fields.get(key)
        if spec is not None:
            read, kw = spec
            value = read(body, key, **kw)
            if value is not None:
                setattr(params, key, value)
    return params


def openai_sampling(body: Mapping[str, Any]) -> tuple[SamplingParams, TextOptions]:
    """Sampling parameters of an OpenAI chat or completions body (vLLM extensions too)."""
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = get_int(body, key, None, lo=1)
    n = get_int(body, "n", 1, lo=1, hi=MAX_N)
    params = _common(body, max_tokens, n)
    params.min_new_tokens = get_int(body, "min_tokens", 0, lo=0)
    if max_tokens is not None and params.min_new_tokens > max_tokens:
        raise BadRequest(f"'min_tokens' ({params.min_new_tokens}) exceeds '{key}' ({max_tokens})")
    text = TextOptions(
        stops=stop_strings(body),
        include_stop=get_bool(body, "include_stop_str_in_output"),
        skip_special_tokens=params.skip_special_tokens,
    )
    return params, text


def sglang_sampling(body: Mapping[str, Any]) -> tuple[SamplingParams, TextOptions]:
    """SGLang ``sampling_params`` of a ``/generate`` body."""
    sp = get_dict(body, "sampling_params") or {}
    max_new = get_int(sp, "max_new_tokens", 128, lo=0)
    params = _common(sp, max_new, get_int(sp, "n", 1, lo=1, hi=MAX_N))
    params.min_new_tokens = get_int(sp, "min_new_tokens", 0, lo=0)
    text = TextOptions(
        stops=stop_strings(sp),
        include_stop=get_bool(sp, "no_stop_trim"),
        skip_special_tokens=params.skip_special_tokens,
    )
    return params, text


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """PD bootstrap fields as sent: each a scalar (or null) or an array for a batch."""

    host: Any = None
    port: Any = None
    room: Any = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Bootstrap:
        host, port, room = body.get("bootstrap_host"), body.get("bootstrap_port"), body.get("bootstrap_room")
        for key, value, kind in (("bootstrap_host", host, str), ("bootstrap_port", port, int), ("bootstrap_room", room, int)):
            items = value if type(value) is list else [value]
            for v in items:
                if v is not None and (type(v) is not kind):
                    want = "a string" if kind is str else "an integer"
                    raise BadRequest(f"'{key}' must be {want} or an array of them, got {v!r:.40}", param=key)
        return cls(host, port, room)

    def batch_len(self) -> int | None:
        lens = {len(v) for v in (self.host, self.port, self.room) if type(v) is list}
        if len(lens) > 1:
            raise BadRequest("bootstrap_host, bootstrap_port and bootstrap_room arrays differ in length")
        return lens.pop() if lens else None

    def at(self, i: int) -> tuple[Any, Any, Any]:
        return tuple(v[i] if type(v) is list else v for v in (self.host, self.port, self.room))  # type: ignore[return-value]


@dataclass(slots=True)
class Unit:
    """One ``engine.generate`` call; its choice ``j`` is the request's ``first + j``."""

    inp: GenerateInput
    first: int
    prompt: int = 0  # which prompt of the request


@dataclass(slots=True)
class EngineOptions:
    """Per-request engine fields that are not sampling parameters."""

    fault: str | None = None
    return_logprob: bool = False
    top_logprobs: int = 0
    kv_transfer_params: dict | None = None
    stream: bool = True
    rids: Sequence[str] = field(default_factory=tuple)


def build_units(
    rid: str,
    prompts: Sequence[list[int]],
    params: SamplingParams,
    bootstrap: Bootstrap,
    opts: EngineOptions,
) -> list[Unit]:
    """Split a request into engine calls (see the module docstring)."""
    n = params.n
    blen = bootstrap.batch_len()
    per_choice = blen is not None and blen == len(prompts) * n and n > 1
    if blen is not None and not per_choice and blen != len(prompts):
        raise BadRequest(
            f"bootstrap arrays have {blen} entries; expected {len(prompts)} (one per prompt)"
            + (f" or {len(prompts) * n} (one per choice)" if n > 1 else "")
        )
    units: list[Unit] = []
    if per_choice:
        one = replace(params, n=1)
        for p, ids in enumerate(prompts):
            for j in range(n):
                k = p * n + j
                host, port, room = bootstrap.at(k)
                units.append(Unit(_input(f"{rid}-{k}", ids, one, opts, host, port, room), k, p))
        return units
    for p, ids in enumerate(prompts):
        host, port, room = bootstrap.at(p) if blen is not None else (bootstrap.host, bootstrap.port, bootstrap.room)
        sub_rid = opts.rids[p] if opts.rids else (rid if len(prompts) == 1 else f"{rid}-{p}")
        units.append(Unit(_input(sub_rid, ids, params, opts, host, port, room), p * n, p))
    return units


def _input(rid: str, ids: list[int], params: SamplingParams, opts: EngineOptions, host: Any, port: Any, room: Any) -> GenerateInput:
    return GenerateInput(
        rid=rid,
        input_ids=ids,
        params=params,
        stream=opts.stream,
        fault=opts.fault,
        bootstrap_host=host,
        bootstrap_port=port,
        bootstrap_room=room,
        kv_transfer_params=opts.kv_transfer_params,
        return_logprob=opts.return_logprob,
        top_logprobs=opts.top_logprobs,
    )


def request_rid(body: Mapping[str, Any], header_rid: str | None) -> str:
    """The request id: the body's ``rid`` (SGLang), else ``x-request-id``, else new."""
    rid = body.get("rid")
    if rid is not None and type(rid) is not list:
        return get_str(body, "rid")
    return header_rid or new_rid()
