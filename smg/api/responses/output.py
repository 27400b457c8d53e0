"""Chat output -> Responses output items and streaming events.

:class:`OutputBuilder` takes what the chat side produced, piece by piece (reasoning text,
answer text, tool-call fragments) and returns the Responses events each piece means, with
``sequence_number``s; ``finish()`` closes the open items and returns the terminal event
with the whole Response object. A whole (non-streamed) answer goes through the same
builder in one piece each, so a streamed response and a whole one have the same shape.
"""

from __future__ import annotations

import time
from typing import Any

from smg.api.common import new_id

__all__ = ["OutputBuilder", "usage"]

Json = dict[str, Any]


def usage(prompt: int, completion: int, cached: int, reasoning: int) -> Json:
    return {
        "input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


class OutputBuilder:
    def __init__(self, response: Json, *, parallel_tool_calls: bool = True, quiet: bool = False) -> None:
        self.response = response  # the Response object; ``output`` grows here
        self.quiet = quiet  # a whole response: no lifecycle snapshots (the events are not sent)
        self.seq = 0
        self.parallel = parallel_tool_calls
        self._open: Json | None = None  # the item being written
        self._calls: dict[int, Json] = {}  # chat tool-call index -> function_call item
        self.reasoning_text = ""

    # -- events --------------------------------------------------------------------------
    def event(self, kind: str, **fields: Any) -> Json:
        ev = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return ev

    def snapshot(self, kind: str) -> Json:
        """A lifecycle event (``response.created`` ...) with the response as it is now."""
        return self.event(kind, response=self.response if self.quiet else _copy(self.response))

    def _index(self, item: Json) -> int:
        return self.response["output"].index(item)

    def _add(self, item: Json, out: list[Json]) -> Json:
        self.response["output"].append(item)
        out.append(self.event("response.output_item.added", output_index=self._index(item), item=_copy(item)))
        return item

    # -- pieces --------------------------------------------------------------------------
    def _text_item(self, kind: str, out: list[Json]) -> Json:
        """The open reasoning or message item, opened (with its one text part) if need be."""
        item = self._open
        if item is not None and item["type"] == kind:
            return item
        self._close(out)
        if kind == "reasoning":
            fresh: Json = {"id": new_id("rs"), "type": "reasoning", "summary": [], "content": [], "status": "in_progress"}
            part: Json = {"type": "reasoning_text", "text": ""}
        else:
            fresh = {"id": new_id("msg"), "type": "message", "role": "assistant", "status": "in_progress", "content": []}
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        item = self._open = self._add(fresh, out)
        item["content"].append(part)
        out.append(self.event("response.content_part.added", item_id=item["id"], output_index=self._index(item),
                              content_index=0, part=_copy(part)))
        return item

    def reasoning(self, text: str) -> list[Json]:
        out: list[Json] = []
        if text:
            item = self._text_item("reasoning", out)
            item["content"][0]["text"] += text
            self.reasoning_text += text
            out.append(self.event("response.reasoning_text.delta", item_id=item["id"],
                                  output_index=self._index(item), content_index=0, delta=text))
        return out

    def content(self, text: str, logprobs: list[Json] | None = None) -> list[Json]:
        """Answer text, with the chat ``logprobs.content`` entries of its tokens if asked for."""
        out: list[Json] = []
        if text:
            item = self._text_item("message", out)
            item["content"][0]["text"] += text
            lps = [_logprob(e) for e in logprobs or ()]
            item["content"][0]["logprobs"] += lps
            out.append(self.event("response.output_text.delta", item_id=item["id"], output_index=self._index(item),
                                  content_index=0, delta=text, logprobs=lps))
        return out

    def tool(self, index: int, call_id: str | None, name: str | None, arguments: str) -> list[Json]:
        """A fragment of chat tool call ``index`` (id and name come with its first one)."""
        out: list[Json] = []
        if not self.parallel and index not in self._calls and self._calls:
            return out  # parallel_tool_calls=false: the first call only
        item = self._calls.get(index)
        if item is None:
            self._close(out)
            item = self._open = self._calls[index] = self._add({
                "id": new_id("fc"), "type": "function_call", "status": "in_progress",
                "call_id": call_id or new_id("call"), "name": name or "", "arguments": "",
            }, out)
        elif self._open is not item:
            self._close(out)
            self._open = item
        if arguments:
            item["arguments"] += arguments
            out.append(self.event("response.function_call_arguments.delta", item_id=item["id"],
                                  output_index=self._index(item), delta=arguments))
        return out

    # -- the end -------------------------------------------------------------------------
    def _close(self, out: list[Json], status: str = "completed") -> None:
        item, self._open = self._open, None
        if item is None or item["status"] != "in_progress":
            return
        index = self._index(item)
        item["status"] = status
        if item["type"] == "message":
            part = item["content"][0]
            out.append(self.event("response.output_text.done", item_id=item["id"], output_index=index,
                                  content_index=0, text=part["text"], logprobs=_copy(part["logprobs"])))
            out.append(self.event("response.content_part.done", item_id=item["id"], output_index=index,
                                  content_index=0, part=_copy(part)))
        elif item["type"] == "reasoning":
            part = item["content"][0]
            out.append(self.event("response.reasoning_text.done", item_id=item["id"], output_index=index,
                                  content_index=0, text=part["text"]))
            out.append(self.event("response.content_part.done", item_id=item["id"], output_index=index,
                                  content_index=0, part=_copy(part)))
        else:
            out.append(self.event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                                  name=item["name"], arguments=item["arguments"]))
        out.append(self.event("response.output_item.done", output_index=index, item=_copy(item)))

    def close_items(self, status: str = "completed") -> list[Json]:
        """Close every item still open (function calls stay open until the end)."""
        out: list[Json] = []
        self._close(out, status)
        for item in self._calls.values():
            if item["status"] == "in_progress":
                self._open = item
                self._close(out, status)
        return out

    def finish(self, finish_reason: str | None, use: Json, error: Json | None = None) -> list[Json]:
        """Close everything and set the status from the chat ``finish_reason`` (``length``:
        incomplete, max_output_tokens; ``abort``: failed) or ``error``; the last event is
        the terminal one."""
        r = self.response
        if error is None and finish_reason == "abort":
            error = {"code": "server_error", "message": "the worker ended the request before it was complete"}
        if error is not None:
            status, kind = "failed", "response.failed"
        elif finish_reason == "length":
            status, kind = "incomplete", "response.incomplete"
        else:
            status, kind = "completed", "response.completed"
        out = self.close_items("completed" if status == "completed" else "incomplete")
        r["status"] = status
        r["usage"] = use
        r["error"] = error
        r["incomplete_details"] = {"reason": "max_output_tokens"} if status == "incomplete" else None
        if status == "completed":
            r["completed_at"] = int(time.time())
        out.append(self.snapshot(kind))
        return out


def _logprob(entry: Json) -> Json:
    """A chat ``logprobs.content`` entry as a Responses output_text logprob."""
    token = str(entry.get("token", ""))
    return {"token": token, "bytes": entry.get("bytes") or list(token.encode()), "logprob": entry.get("logprob", 0.0),
            "top_logprobs": [{"token": str(t.get("token", "")), "bytes": t.get("bytes") or list(str(t.get("token", "")).encode()),
                              "logprob": t.get("logprob", 0.0)} for t in entry.get("top_logprobs") or ()]}


def _copy(value: Any) -> Any:
    """A deep copy of JSON data (events must not change as the response grows)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
