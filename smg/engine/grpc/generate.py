"""The Generate rpc of both engine protocols: engine output shaped as SGLang/vLLM send it.

Streamed: one ``chunk`` per engine step (new token ids, cumulative counts, the step's
logprobs; input logprobs once, on a choice's first chunk), then per choice a
``complete`` whose ``output_ids`` is the last step's slice. Not streamed: one
``complete`` per choice with all output ids and logprobs. Engine errors end the call
with a gRPC status (``abort_with``). The two protocols' messages share names and field
names; what differs is declared by the servicer class (``_pb``, ``_REQUEST_ID``,
``_INPUT_LOGPROBS``, ``_KV_JSON``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from smg.engine.core import Engine, EngineError, Finished, GenerateInput
from smg.engine.grpc.common import abort_with

__all__ = ["GenerateMixin"]


class GenerateMixin:
    engine: Engine
    _pb: Any  # the protocol's generated module
    _REQUEST_ID = True  # GenerateResponse carries request_id (SGLang)
    _INPUT_LOGPROBS = True  # send prompt logprobs with output logprobs (SGLang)
    _KV_JSON = False  # GenerateComplete.kv_transfer_params_json (vLLM)

    def _input(self, request: Any, context: Any) -> GenerateInput:
        raise NotImplementedError

    def _logprobs(self, lps: list[float], ids: list[int], top: list) -> Any:
        out = self._pb.OutputLogProbs(token_logprobs=lps, token_ids=ids)
        for alts in top or ():
            out.top_logprobs.append(
                self._pb.TopLogProbs(values=[v for _, v in alts], token_ids=[t for t, _ in alts])
            )
        return out

    def _input_logprobs(self, input_ids: list[int]) -> Any:
        """As SGLang sends them: no value for the first prompt token, then one each."""
        pb = self._pb
        out = pb.InputLogProbs(token_ids=input_ids)
        out.token_logprobs.append(pb.InputTokenLogProb())
        for i in range(1, len(input_ids)):
            out.token_logprobs.append(pb.InputTokenLogProb(value=-((i % 5) + 1) / 4.0))
        return out

    async def Generate(self, request: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
        try:
            inp = self._input(request, context)
        except EngineError as exc:
            await abort_with(context, exc)
        pb = self._pb
        Response = pb.GenerateResponse  # noqa: N806
        head = {"request_id": inp.rid} if self._REQUEST_ID else {}
        with_input_lp = self._INPUT_LOGPROBS and inp.return_logprob
        last: dict[int, list[int]] = {}
        logprobs: dict[int, tuple[list[float], list]] = {}
        try:
            async with contextlib.aclosing(self.engine.generate(inp)) as stream:
                async for item in stream:
                    if type(item) is not Finished:
                        if inp.stream:
                            resp = Response(**head)  # filled in place: cheaper than kwargs
                            chunk = resp.chunk
                            chunk.token_ids.extend(item.token_ids)
                            chunk.prompt_tokens = item.prompt_tokens
                            chunk.completion_tokens = item.completion_tokens
                            chunk.cached_tokens = item.cached_tokens
                            chunk.index = item.index
                            if item.logprobs is not None:
                                chunk.output_logprobs.CopyFrom(
                                    self._logprobs(item.logprobs, item.token_ids, item.top_logprobs)
                                )
                                if with_input_lp and item.index not in last:
                                    chunk.input_logprobs.CopyFrom(self._input_logprobs(inp.input_ids))
                            last[item.index] = item.token_ids
                            yield resp
                        elif item.logprobs is not None:
                            lp, top = logprobs.setdefault(item.index, ([], []))
                            lp.extend(item.logprobs)
                            top.extend(item.top_logprobs or ())
                        continue
                    yield Response(complete=self._complete(inp, item, last, logprobs), **head)
        except EngineError as exc:
            await abort_with(context, exc)

    def _complete(self, inp: GenerateInput, item: Finished, last: dict, logprobs: dict) -> Any:
        ids = last.get(item.index, []) if inp.stream else item.output_ids
        complete = self._pb.GenerateComplete(
            output_ids=ids,
            finish_reason=item.finish_reason,
            prompt_tokens=item.prompt_tokens,
            completion_tokens=item.completion_tokens,
            cached_tokens=item.cached_tokens,
            index=item.index,
        )
        if isinstance(item.matched_stop, int):
            complete.matched_token_id = item.matched_stop
        elif isinstance(item.matched_stop, str):
            complete.matched_stop_str = item.matched_stop
        if item.index in logprobs:
            lp, top = logprobs[item.index]
            complete.output_logprobs.CopyFrom(self._logprobs(lp, ids, top))
        if self._INPUT_LOGPROBS and inp.return_logprob:
            complete.input_logprobs.CopyFrom(self._input_logprobs(inp.input_ids))
        if self._KV_JSON and item.kv_transfer_params is not None:
            complete.kv_transfer_params_json = json.dumps(item.kv_transfer_params)
        return complete
