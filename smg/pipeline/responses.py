"""OpenAI response objects for chat and text completions (streamed and whole)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from smg.parsers.core import Delta, ToolCall

__all__ = ["ResponseShape"]


def _usage(prompt: int, completion: int, cached: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


class ResponseShape:
    """Builds the chunks/response of one request: ``chat`` or ``text`` completions."""

    def __init__(self, kind: str, rid: str, model: str) -> None:
        self.kind = kind
        self.id = rid
        self.model = model
        self.created = int(time.time())
        self.object = "chat.completion" if kind == "chat" else "text_completion"
        self._chunk_object = "chat.completion.chunk" if kind == "chat" else "text_completion"
        self._sse_parts: dict[int, tuple[bytes, bytes]] = {}

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "object": self._chunk_object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            out["usage"] = usage
        return out

    def content_sse(self, index: int, text: str) -> bytes:
        """The SSE event of ``delta_chunk(index, Delta(content=text))`` (text non-empty, no
        logprobs), byte for byte, from a per-choice prefix and suffix built once: the
        per-token path skips the dicts and encodes only the text."""
        parts = self._sse_parts.get(index)
        if parts is None:
            key = b'"delta":{"content":' if self.kind == "chat" else b'"text":'
            head = orjson.dumps(self._chunk([{"index": index}]))[:-3]  # up to the choice's last field
            tail = b'},"logprobs":null,"finish_reason":null}]}\n\n' if self.kind == "chat" \
                else b',"logprobs":null,"finish_reason":null}]}\n\n'
            parts = self._sse_parts[index] = (b"data: " + head + b"," + key, tail)
        return parts[0] + orjson.dumps(text) + parts[1]

    def role_chunk(self, index: int) -> dict[str, Any]:
        return self._chunk([{"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}])

    def delta_chunk(self, index: int, delta: Delta, logprobs: Any = None) -> dict[str, Any] | None:
        if self.kind == "text":
            if not delta.content and logprobs is None:
                return None
            return self._chunk([{"index": index, "text": delta.content, "logprobs": logprobs, "finish_reason": None}])
        d: dict[str, Any] = {}
        if delta.content:
            d["content"] = delta.content
        if delta.reasoning:
            d["reasoning_content"] = delta.reasoning
        if delta.tool_calls:
            d["tool_calls"] = [
                {"index": tc.index, **({"id": tc.id, "type": "function"} if tc.id else {}),
                 "function": ({"name": tc.name} if tc.name is not None else {}) | {"arguments": tc.arguments}}
                for tc in delta.tool_calls
            ]
        if not d and logprobs is None:
            return None
        return self._chunk([{"index": index, "delta": d, "logprobs": logprobs, "finish_reason": None}])

    def finish_chunk(self, index: int, reason: str, matched: Any) -> dict[str, Any]:
        key = "delta" if self.kind == "chat" else "text"
        empty: Any = {} if self.kind == "chat" else ""
        return self._chunk([{"index": index, key: empty, "logprobs": None, "finish_reason": reason, "matched_stop": matched}])

    def usage_chunk(self, prompt: int, completion: int, cached: int) -> dict[str, Any]:
        return self._chunk([], _usage(prompt, completion, cached))

    def whole(self, choices: Sequence[dict[str, Any]], prompt: int, completion: int, cached: int) -> dict[str, Any]:
        """``choices``: dicts with index, content, reasoning, calls, finish_reason, matched_stop, logprobs."""
        out = []
        for c in choices:
            if self.kind == "chat":
                msg: dict[str, Any] = {"role": "assistant", "content": c["content"] or (None if c["calls"] else "")}
                if c["reasoning"]:
                    msg["reasoning_content"] = c["reasoning"]
                if c["calls"]:
                    msg["tool_calls"] = [_tool_call(i, call) for i, call in enumerate(c["calls"])]
                out.append({"index": c["index"], "message": msg, "logprobs": c.get("logprobs"),
                            "finish_reason": c["finish_reason"], "matched_stop": c["matched_stop"]})
            else:
                out.append({"index": c["index"], "text": c["content"], "logprobs": c.get("logprobs"),
                            "finish_reason": c["finish_reason"], "matched_stop": c["matched_stop"]})
        return {"id": self.id, "object": self.object, "created": self.created, "model": self.model,
                "choices": out, "usage": _usage(prompt, completion, cached)}


def _tool_call(i: int, call: ToolCall) -> dict[str, Any]:
    from smg.parsers.core import new_call_id

    return {"id": new_call_id(), "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
