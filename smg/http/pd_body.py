"""Request bodies of the two PD legs over HTTP (pure functions on decoded JSON).

SGLang style: the same body to both workers, with ``bootstrap_host``,
``bootstrap_port`` and ``bootstrap_room`` added (arrays of one entry per element for a
batch: an array ``prompt``, a batched ``/generate``, a chat with ``n > 1``).

vLLM style (the shape of vLLM's disaggregated proxy): the prefill copy asks for one
token, not streamed, with ``kv_transfer_params = {"do_remote_decode": true, ...}``;
the prefill answer carries the ``kv_transfer_params`` the decode copy must send.
"""

from __future__ import annotations

from typing import Any

import orjson

from smg.errors import BadRequest

__all__ = [
    "PD_PATHS",
    "batch_size",
    "kv_params_of",
    "merge_input_logprobs",
    "sglang_body",
    "vllm_decode_body",
    "vllm_prefill_body",
]

PD_PATHS = ("/v1/chat/completions", "/v1/completions", "/generate")

# what vLLM's proxy sends on the prefill leg: "decode happens elsewhere"
_PREFILL_KV = {
    "do_remote_decode": True,
    "do_remote_prefill": False,
    "remote_engine_id": None,
    "remote_block_ids": None,
    "remote_host": None,
    "remote_port": None,
}


def batch_size(path: str, data: dict[str, Any]) -> int | None:
    """Elements of a batched request (one bootstrap room each), None when not batched."""
    if path == "/v1/chat/completions":
        n = data.get("n")
        return n if type(n) is int and n > 1 else None
    if path == "/v1/completions":
        prompt = data.get("prompt")
        if type(prompt) is list and prompt and all(type(p) in (str, list) for p in prompt):
            return len(prompt)
        return None
    if path == "/generate":
        text, ids = data.get("text"), data.get("input_ids")
        if type(text) is list:
            return len(text)
        if type(ids) is list and ids and all(type(x) is list for x in ids):
            return len(ids)
    return None


def sglang_body(data: dict[str, Any], host: str, port: int | None, rooms: int | list[int]) -> bytes:
    """The body both SGLang-style legs get: ``data`` plus the bootstrap fields."""
    out = dict(data)
    if isinstance(rooms, list):
        out["bootstrap_host"] = [host] * len(rooms)
        out["bootstrap_port"] = [port] * len(rooms)
        out["bootstrap_room"] = rooms
    else:
        out["bootstrap_host"] = host
        out["bootstrap_port"] = port
        out["bootstrap_room"] = rooms
    return orjson.dumps(out)


def vllm_prefill_body(path: str, data: dict[str, Any]) -> bytes:
    """The prefill leg: one token, one choice, a whole answer, remote decode announced."""
    if batch_size(path, data) is not None and path != "/v1/chat/completions":
        raise BadRequest("vLLM-style PD takes one prompt per request; send the prompts separately",
                         param="prompt" if path == "/v1/completions" else "text")
    out = dict(data)
    out["stream"] = False
    out.pop("stream_options", None)
    out["kv_transfer_params"] = dict(_PREFILL_KV)
    if path == "/generate":
        sp = dict(out.get("sampling_params") or {})
        sp.update(max_new_tokens=1, n=1)
        sp.pop("min_new_tokens", None)
        out["sampling_params"] = sp
        return orjson.dumps(out)
    out["max_tokens"] = 1
    if out.get("max_completion_tokens") is not None:
        out["max_completion_tokens"] = 1
    out["n"] = 1
    out.pop("min_tokens", None)
    return orjson.dumps(out)


def vllm_decode_body(data: dict[str, Any], kv: dict[str, Any] | None) -> bytes:
    """The decode leg: the client's request with the prefill's ``kv_transfer_params``.

    Without params (a prefill worker that returned none) the body goes as it came and the
    decode worker says what is missing.
    """
    if kv is None:
        out = {k: v for k, v in data.items() if k != "kv_transfer_params"}
    else:
        out = {**data, "kv_transfer_params": kv}
    return orjson.dumps(out)


def kv_params_of(path: str, raw: bytes) -> dict[str, Any] | None:
    """The ``kv_transfer_params`` of a prefill leg's whole answer, if it has them."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if path == "/generate":
        if isinstance(data, list):
            data = data[0] if data else None
        meta = data.get("meta_info") if isinstance(data, dict) else None
        kv = meta.get("kv_transfer_params") if isinstance(meta, dict) else None
    else:
        kv = data.get("kv_transfer_params") if isinstance(data, dict) else None
    return kv if isinstance(kv, dict) else None


def merge_input_logprobs(decode: bytes, prefill: bytes) -> bytes:
    """A whole ``/generate`` decode answer with the prompt logprobs the prefill computed.

    SGLang's decode worker never sees the prompt run, so ``meta_info.input_token_logprobs``
    (and ``input_top_logprobs``) come from the prefill answer, element by element for a
    batch. Answers that do not parse, or lack the fields, are returned unchanged.
    """
    try:
        d, p = orjson.loads(decode), orjson.loads(prefill)
    except orjson.JSONDecodeError:
        return decode
    d_items, p_items = (d, p) if isinstance(d, list) and isinstance(p, list) else ([d], [p])
    changed = False
    for d_item, p_item in zip(d_items, p_items):
        p_meta = p_item.get("meta_info") if isinstance(p_item, dict) else None
        d_meta = d_item.get("meta_info") if isinstance(d_item, dict) else None
        if not isinstance(p_meta, dict) or not isinstance(d_meta, dict):
            continue
        for key in ("input_token_logprobs", "input_top_logprobs"):
            if p_meta.get(key) is not None:
                d_meta[key] = p_meta[key]
                changed = True
    return orjson.dumps(d) if changed else decode
