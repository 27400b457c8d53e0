"""OpenAI response bytes: chat completions and (legacy) completions, streamed or not.

Stream chunks are assembled from a per-request byte prefix (id, created, model are
serialized once), so a content chunk costs one ``orjson.dumps`` of the delta text::

    data: {"id":..,"object":"chat.completion.chunk","created":..,"model":..,
           "choices":[{"index":0,"delta":{"content":"…"},"logprobs":null,"finish_reason":null}]}

Each choice starts with a role chunk (``delta.role = "assistant"``) and ends with a chunk
carrying ``finish_reason`` and SGLang's ``matched_stop``; with
``stream_options.include_usage`` a last chunk has ``choices: []`` and the usage; then
``data: [DONE]``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from smg.engine.http.runner import Choice, Run

__all__ = ["ChatFormat", "CompletionFormat"]

_dumps = orjson.dumps


class _Base:
    object_chunk: bytes = b""

    def __init__(self, run: Run, rid: str, model: str, *, include_usage: bool, tokenizer: Any) -> None:
        self.run = run
        self.id = rid
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self.tokenizer = tokenizer
        self._prefix = (
            b'data: {"id":'
            + _dumps(rid)
            + b',"object":"'
            + self.object_chunk
            + b'","created":%d,"model":' % self.created
            + _dumps(model)
            + b',"choices":[{"index":'
        )
        self._lp_sent: dict[int, int] = {}

    def _new_logprobs(self, choice: Choice) -> list[tuple[int, float, list]] | None:
        if choice.logprobs is None:
            return None
        start = self._lp_sent.get(choice.index, 0)
        self._lp_sent[choice.index] = len(choice.logprobs)
        return choice.logprobs[start:]

    def _token(self, tid: int) -> str:
        return self.tokenizer.decode([tid], skip_special_tokens=False)

    def tail(self) -> bytes:
        out = b""
        if self.include_usage:
            out = (
                b'data: {"id":'
                + _dumps(self.id)
                + b',"object":"'
                + self.object_chunk
                + b'","created":%d,"model":' % self.created
                + _dumps(self.model)
                + b',"choices":[],"usage":'
                + _dumps(self.run.usage())
                + b"}\n\n"
            )
        return out + b"data: [DONE]\n\n"

    def _finish_tail(self, choice: Choice) -> bytes:
        return (
            b'"finish_reason":'
            + _dumps(choice.finish_reason)
            + b',"matched_stop":'
            + _dumps(choice.matched_stop)
            + b"}]}\n\n"
        )

    def _response(self, obj: str, choices: list[dict[str, Any]]) -> bytes:
        out: dict[str, Any] = {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": self.run.usage(),
        }
        kv = [c.kv_transfer_params for c in self.run.choices if c.kv_transfer_params]
        if kv:
            out["kv_transfer_params"] = kv[0]
        return _dumps(out)


class ChatFormat(_Base):
    object_chunk = b"chat.completion.chunk"

    def head(self) -> bytes:
        role = b',"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n'
        return b"".join(self._prefix + b"%d" % c.index + role for c in self.run.choices)

    def delta(self, choice: Choice, text: str) -> bytes:
        if choice.logprobs is None:
            return (
                self._prefix
                + b"%d" % choice.index
                + b',"delta":{"content":'
                + _dumps(text)
                + b'},"logprobs":null,"finish_reason":null}]}\n\n'
            )
        lp = _dumps(self._chat_logprobs(self._new_logprobs(choice)))
        return (
            self._prefix
            + b"%d" % choice.index
            + b',"delta":{"content":'
            + _dumps(text)
            + b'},"logprobs":'
            + lp
            + b',"finish_reason":null}]}\n\n'
        )

    def finish(self, choice: Choice) -> bytes:
        return self._prefix + b"%d" % choice.index + b',"delta":{},"logprobs":null,' + self._finish_tail(choice)

    def _chat_logprobs(self, entries: list[tuple[int, float, list]]) -> dict[str, Any]:
        content = []
        for tid, lp, top in entries:
            token = self._token(tid)
            content.append(
                {
                    "token": token,
                    "logprob": lp,
                    "bytes": list(token.encode()),
                    "top_logprobs": [
                        {"token": (t := self._token(a)), "logprob": alp, "bytes": list(t.encode())}
                        for a, alp in top
                    ],
                }
            )
        return {"content": content}

    def body(self) -> bytes:
        choices = []
        for c in self.run.choices:
            choices.append(
                {
                    "index": c.index,
                    "message": {"role": "assistant", "content": c.text.text},
                    "logprobs": None if c.logprobs is None else self._chat_logprobs(c.logprobs),
                    "finish_reason": c.finish_reason,
                    "matched_stop": c.matched_stop,
                }
            )
        return self._response("chat.completion", choices)


class CompletionFormat(_Base):
    object_chunk = b"text_completion"

    def __init__(self, run: Run, rid: str, model: str, *, include_usage: bool, tokenizer: Any, echo: list[str] | None = None) -> None:
        super().__init__(run, rid, model, include_usage=include_usage, tokenizer=tokenizer)
        self.echo = echo  # the prompt text per prompt, when echo=true

    def _echo(self, choice: Choice) -> str:
        if self.echo is None:
            return ""
        return self.echo[self.run.units[choice.unit].prompt]

    def head(self) -> bytes:
        if self.echo is None:
            return b""
        return b"".join(self._text_chunk(c, self._echo(c), None) for c in self.run.choices)

    def _text_chunk(self, choice: Choice, text: str, lp: list | None) -> bytes:
        return (
            self._prefix
            + b"%d" % choice.index
            + b',"text":'
            + _dumps(text)
            + b',"logprobs":'
            + (b"null" if lp is None else _dumps(self._legacy_logprobs(lp, 0)))
            + b',"finish_reason":null}]}\n\n'
        )

    def delta(self, choice: Choice, text: str) -> bytes:
        return self._text_chunk(choice, text, self._new_logprobs(choice))

    def finish(self, choice: Choice) -> bytes:
        return self._prefix + b"%d" % choice.index + b',"text":"","logprobs":null,' + self._finish_tail(choice)

    def _legacy_logprobs(self, entries: list[tuple[int, float, list]], offset: int) -> dict[str, Any]:
        tokens, lps, tops, offsets = [], [], [], []
        for tid, lp, top in entries:
            token = self._token(tid)
            tokens.append(token)
            lps.append(lp)
            tops.append({self._token(a): alp for a, alp in top})
            offsets.append(offset)
            offset += len(token)
        return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}

    def body(self) -> bytes:
        choices = []
        for c in self.run.choices:
            prefix = self._echo(c)
            choices.append(
                {
                    "index": c.index,
                    "text": prefix + c.text.text,
                    "logprobs": None if c.logprobs is None else self._legacy_logprobs(c.logprobs, len(prefix)),
                    "finish_reason": c.finish_reason,
                    "matched_stop": c.matched_stop,
                }
            )
        return self._response("text_completion", choices)
