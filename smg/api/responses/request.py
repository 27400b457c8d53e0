"""A ``POST /v1/responses`` body: checked (400 naming the field), and turned into the
chat completion the shared pipeline (gRPC mode) or a worker (proxy mode) runs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from smg.api.responses.items import normalize_input
from smg.errors import BadRequest

__all__ = ["ResponsesRequest", "check_metadata", "parse_request"]

Json = dict[str, Any]

MAX_METADATA = 16


@dataclass
class ResponsesRequest:
    model: str | None
    input_items: list[Json]  # normalized, with ids: what this request adds to the context
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation_id: str | None = None
    store: bool = True
    stream: bool = False
    background: bool = False
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: list[Json] = field(default_factory=list)  # Responses function tools, as given
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    text: Json = field(default_factory=lambda: {"format": {"type": "text"}})
    reasoning: Json | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    truncation: str = "disabled"
    top_logprobs: int | None = None
    include: list[str] = field(default_factory=list)

    @property
    def logprobs(self) -> bool:
        return "message.output_text.logprobs" in self.include or bool(self.top_logprobs)

    def chat_body(self, messages: list[Json], *, stream: bool) -> Json:
        """The chat completion request for ``messages`` (the whole context)."""
        body: Json = {"messages": messages, "stream": stream}
        if self.model is not None:
            body["model"] = self.model
        if stream:
            body["stream_options"] = {"include_usage": True}
        for key, value in (("max_tokens", self.max_output_tokens), ("temperature", self.temperature),
                           ("top_p", self.top_p), ("user", self.user)):
            if value is not None:
                body[key] = value
        if self.tools:
            body["tools"] = [{"type": "function", "function": {
                k: t[k] for k in ("name", "description", "parameters", "strict") if t.get(k) is not None}}
                for t in self.tools]
            body["tool_choice"] = self.chat_tool_choice()
            body["parallel_tool_calls"] = self.parallel_tool_calls
        fmt = self.text.get("format") or {"type": "text"}
        if fmt["type"] == "json_schema":
            spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
            body["response_format"] = {"type": "json_schema", "json_schema": spec}
        elif fmt["type"] == "json_object":
            body["response_format"] = {"type": "json_object"}
        if self.logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = self.top_logprobs or 0
        effort = (self.reasoning or {}).get("effort")
        if effort is not None:
            body["reasoning_effort"] = effort
            if effort == "none":  # the template's thinking toggle, whichever name it reads
                body["chat_template_kwargs"] = {"enable_thinking": False, "thinking": False}
        return body

    def chat_tool_choice(self) -> Any:
        choice = self.tool_choice
        if isinstance(choice, dict):
            return {"type": "function", "function": {"name": choice["name"]}}
        return choice

    def echo(self) -> Json:
        """The request's fields as a Response object repeats them."""
        return {
            "instructions": self.instructions, "max_output_tokens": self.max_output_tokens,
            "metadata": self.metadata, "model": self.model, "parallel_tool_calls": self.parallel_tool_calls,
            "previous_response_id": self.previous_response_id, "reasoning": self.reasoning or {"effort": None, "summary": None},
            "store": self.store, "temperature": 1.0 if self.temperature is None else self.temperature,
            "text": self.text, "tool_choice": self.tool_choice, "tools": self.tools,
            "top_p": 1.0 if self.top_p is None else self.top_p, "truncation": self.truncation, "user": self.user,
            "background": self.background, "top_logprobs": self.top_logprobs,
            "conversation": {"id": self.conversation_id} if self.conversation_id else None,
        }


def _bad(param: str, what: str) -> BadRequest:
    return BadRequest(f"'{param}' {what}", param=param)


def _opt(body: Json, key: str, types: type | tuple[type, ...], what: str) -> Any:
    value = body.get(key)
    if value is None:
        return None
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, allowed) or (type(value) is bool and bool not in allowed):
        raise _bad(key, f"must be {what}")
    return value


def _number(body: Json, key: str, low: float, high: float) -> float | None:
    value = _opt(body, key, (int, float), "a number")
    if value is not None and (not math.isfinite(value) or not low <= value <= high):
        raise _bad(key, f"must be between {low:g} and {high:g}")
    return value


def parse_request(body: Json) -> ResponsesRequest:
    if "input" not in body or body["input"] is None:
        raise _bad("input", "is required (a string or an array of input items)")
    req = ResponsesRequest(model=_opt(body, "model", str, "a string"), input_items=normalize_input(body["input"]))
    req.instructions = _opt(body, "instructions", str, "a string")
    req.previous_response_id = _opt(body, "previous_response_id", str, "a string (a response id)")
    conv = body.get("conversation")
    if isinstance(conv, dict):
        conv = conv.get("id")
    if conv is not None and not isinstance(conv, str):
        raise _bad("conversation", "must be a conversation id or {'id': ...}")
    req.conversation_id = conv
    if not req.input_items and not req.previous_response_id and not req.conversation_id:
        raise _bad("input", "is empty: give at least one item (or a previous_response_id or conversation)")
    if req.previous_response_id and req.conversation_id:
        raise BadRequest("'previous_response_id' and 'conversation' cannot be used together", param="conversation")
    for key in ("store", "stream", "background", "parallel_tool_calls"):
        value = _opt(body, key, bool, "a boolean")
        if value is not None:
            setattr(req, key, value)
    if req.background and not req.store:
        raise BadRequest("a background response must be stored ('store' must not be false)", param="background")
    mot = _opt(body, "max_output_tokens", int, "an integer")
    if mot is not None and not 1 <= mot <= (1 << 31) - 1:
        raise _bad("max_output_tokens", "must be at least 1")
    req.max_output_tokens = mot
    req.temperature = _number(body, "temperature", 0.0, 2.0)
    req.top_p = _number(body, "top_p", 0.0, 1.0)
    req.tools = _tools(body.get("tools"))
    req.tool_choice = _tool_choice(body.get("tool_choice"), req.tools)
    req.text = _text(body.get("text"))
    reasoning = _opt(body, "reasoning", dict, "an object")
    if reasoning is not None:
        effort = reasoning.get("effort")
        if effort is not None and effort not in ("none", "minimal", "low", "medium", "high", "xhigh"):
            raise _bad("reasoning.effort", "must be none, minimal, low, medium, high or xhigh")
        req.reasoning = {"effort": effort, "summary": reasoning.get("summary")}
    req.metadata = check_metadata(body.get("metadata"))
    req.user = _opt(body, "user", str, "a string")
    truncation = body.get("truncation") or "disabled"
    if truncation not in ("auto", "disabled"):
        raise _bad("truncation", "must be 'auto' or 'disabled'")
    req.truncation = truncation
    top = _opt(body, "top_logprobs", int, "an integer")
    if top is not None and not 0 <= top <= 20:
        raise _bad("top_logprobs", "must be between 0 and 20")
    req.top_logprobs = top
    include = body.get("include") or []
    if not isinstance(include, list) or not all(isinstance(i, str) for i in include):
        raise _bad("include", "must be an array of strings")
    req.include = include
    return req


def _tools(tools: Any) -> list[Json]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _bad("tools", "must be an array")
    out = []
    for i, t in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(t, dict):
            raise _bad(where, "must be an object")
        if t.get("type") != "function":
            raise _bad(f"{where}.type", f"is {t.get('type')!r}: only function tools are supported")
        if not isinstance(t.get("name"), str) or not t["name"]:
            raise _bad(f"{where}.name", "must be a non-empty string")
        if t.get("parameters") is not None and not isinstance(t["parameters"], dict):
            raise _bad(f"{where}.parameters", "must be an object (a JSON schema)")
        if t.get("description") is not None and not isinstance(t["description"], str):
            raise _bad(f"{where}.description", "must be a string")
        out.append({"type": "function", "name": t["name"], "description": t.get("description"),
                    "parameters": t.get("parameters"), "strict": t.get("strict")})
    return out


def _tool_choice(choice: Any, tools: list[Json]) -> Any:
    if choice is None:
        return "auto"
    if choice in ("none", "auto", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        if not any(t["name"] == choice["name"] for t in tools):
            raise _bad("tool_choice.name", f"names {choice['name']!r}, which is not in 'tools'")
        return {"type": "function", "name": choice["name"]}
    raise _bad("tool_choice", "must be 'none', 'auto', 'required' or {'type': 'function', 'name': ...}")


def _text(text: Any) -> Json:
    if text is None:
        return {"format": {"type": "text"}}
    if not isinstance(text, dict):
        raise _bad("text", "must be an object")
    fmt = text.get("format") or {"type": "text"}
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise _bad("text.format.type", "must be text, json_object or json_schema")
    if fmt["type"] == "json_schema":
        if not isinstance(fmt.get("name"), str):
            raise _bad("text.format.name", "must be a string")
        if not isinstance(fmt.get("schema"), dict):
            raise _bad("text.format.schema", "must be an object (a JSON schema)")
    out = dict(text)
    out["format"] = fmt
    return out


def check_metadata(metadata: Any) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or len(metadata) > MAX_METADATA:
        raise _bad("metadata", f"must be an object of at most {MAX_METADATA} string values")
    for k, v in metadata.items():
        if not isinstance(v, str) or len(k) > 64 or len(v) > 512:
            raise _bad("metadata", "keys must be at most 64 characters and values strings of at most 512")
    return dict(metadata)
