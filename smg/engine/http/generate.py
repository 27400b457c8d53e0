"""``POST /generate``: SGLang's native API.

Request: ``text`` (a string or a batch of strings) or ``input_ids`` (ids or a batch of
id lists), ``sampling_params`` (``max_new_tokens`` default 128, ``stop``,
``stop_token_ids``, ``ignore_eos``, ``min_new_tokens``, ``n``, ``no_stop_trim``,
``skip_special_tokens``, ...), ``stream``, ``rid`` (a string or one per prompt),
``return_logprob`` / ``top_logprobs_num``, and the PD bootstrap fields.

Response, one object per choice (a list for a batch or ``n > 1``)::

    {"text": ..., "output_ids": [...],
     "meta_info": {"id": rid, "finish_reason": {"type": "stop", "matched": ...} |
                   {"type": "length", "length": N} | {"type": "abort", "message": ...},
                   "prompt_tokens": .., "completion_tokens": .., "cached_tokens": ..}}

Streaming sends the same object after every step with the text and ``output_ids`` so
far (cumulative, SGLang's default), ``finish_reason`` null until the last event of the
choice (``index`` added for a batch), then ``data: [DONE]``.
"""

from __future__ import annotations

from typing import Any

import orjson

from smg.engine.http.asgi import Endpoint, Receive, Scope, Send, header, parse_json, read_body
from smg.engine.http.context import WorkerContext
from smg.engine.http.errors import BadRequest
from smg.engine.http.openai_routes import REQUEST_ID_HEADER, engine_options
from smg.engine.http.params import get_bool, get_int, int_list
from smg.engine.http.respond import respond
from smg.engine.http.runner import Choice, Run
from smg.engine.http.sampling import Bootstrap, build_units, request_rid, sglang_sampling

__all__ = ["Generate"]


def finish_reason(choice: Choice) -> dict[str, Any] | None:
    reason = choice.finish_reason
    if reason is None:
        return None
    if reason == "length":
        return {"type": "length", "length": choice.completion_tokens}
    if reason == "abort":
        return {"type": "abort", "message": "request aborted"}
    return {"type": reason, "matched": choice.matched_stop}


class GenerateFormat:
    def __init__(self, run: Run, rids: list[str], batch: bool, tokenizer: Any) -> None:
        self.run = run
        self.rids = rids  # per choice
        self.batch = batch
        self.tokenizer = tokenizer

    def _obj(self, choice: Choice, text: str) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "id": self.rids[choice.index],
            "finish_reason": finish_reason(choice),
            "prompt_tokens": choice.prompt_tokens,
            "completion_tokens": choice.completion_tokens,
            "cached_tokens": choice.cached_tokens,
        }
        if choice.logprobs is not None:
            meta["output_token_logprobs"] = [[lp, tid, None] for tid, lp, _ in choice.logprobs]
            meta["output_top_logprobs"] = [[[alp, a, None] for a, alp in top] for _, _, top in choice.logprobs]
        if choice.kv_transfer_params:
            meta["kv_transfer_params"] = choice.kv_transfer_params
        out = {"text": text, "output_ids": choice.text.output_ids, "meta_info": meta}
        if self.batch:
            out["index"] = choice.index
        return out

    def head(self) -> bytes:
        return b""

    def delta(self, choice: Choice, text: str) -> bytes:
        if choice.finish_reason is not None:
            return b""  # finished meanwhile (a batch's reader lags): its finish event says all
        return b"data: " + orjson.dumps(self._obj(choice, choice.text.text)) + b"\n\n"

    def finish(self, choice: Choice) -> bytes:
        return b"data: " + orjson.dumps(self._obj(choice, choice.text.text)) + b"\n\n"

    def tail(self) -> bytes:
        return b"data: [DONE]\n\n"

    def body(self) -> bytes:
        objs = [self._obj(c, c.text.text) for c in self.run.choices]
        return orjson.dumps(objs if self.batch else objs[0])


class Generate(Endpoint):
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.engine = ctx.engine
        self.tokenizer = ctx.tokenizer

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = parse_json(await read_body(receive))
        prompts, batched = self._prompts(body)
        params, text = sglang_sampling(body)
        stream = get_bool(body, "stream")
        opts = engine_options(scope, body, stream)
        if get_bool(body, "return_logprob"):
            opts.return_logprob = True
            opts.top_logprobs = get_int(body, "top_logprobs_num", 0, lo=0, hi=20)
        if not stream:
            params.stop = text.stops
        rid_field = body.get("rid")
        if type(rid_field) is list:
            if len(rid_field) != len(prompts) or not all(type(r) is str for r in rid_field):
                raise BadRequest("'rid' must be a string or one string per prompt", param="rid")
            opts.rids = rid_field
        rid = request_rid(body, header(scope, REQUEST_ID_HEADER))
        units = build_units(rid, prompts, params, Bootstrap.from_body(body), opts)
        run = Run(rid, self.engine, units, text, self.ctx.table)
        rids = [""] * len(run.choices)
        for unit in units:
            for j in range(unit.inp.params.n):
                rids[unit.first + j] = unit.inp.rid
        fmt = GenerateFormat(run, rids, batched or params.n > 1, self.tokenizer)
        await respond(run, fmt, stream, receive, send, self.ctx.inflight)

    def _prompts(self, body: dict[str, Any]) -> tuple[list[list[int]], bool]:
        text, ids = body.get("text"), body.get("input_ids")
        if (text is None) == (ids is None):
            raise BadRequest("give exactly one of 'text' and 'input_ids'")
        if text is not None:
            if type(text) is str:
                return [self.tokenizer.encode(text, add_special_tokens=True)], False
            if type(text) is list and text and all(type(t) is str for t in text):
                return [self.tokenizer.encode(t, add_special_tokens=True) for t in text], True
            raise BadRequest("'text' must be a string or a non-empty array of strings", param="text")
        if type(ids) is list and ids and all(type(x) is list for x in ids):
            return [int_list(x, "input_ids") for x in ids], True
        return [int_list(ids, "input_ids")], False
