"""Validate OpenAI chat/completion requests and turn them into what the pipeline needs.

Only the fields the gateway acts on are read; unknown fields are ignored (as OpenAI
servers do). Every problem is a ``BadRequest`` naming the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from smg.errors import BadRequest

__all__ = ["GenerationRequest", "check_messages", "parse_chat", "parse_completion"]

MAX_STOPS = 16
MAX_STOP_BYTES = 256
MAX_STOP_TOKEN_IDS = 1024
MAX_TOP_LOGPROBS = 20
# What the worker protos hold (uint32 / int32 fields): a value past them would fail while
# the worker request is built, so it is a 400 here instead.
U32_MAX = (1 << 32) - 1
I32_MAX = (1 << 31) - 1
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
# Ranges of the sampling numbers (as SGLang and vLLM check them); NaN fails every range.
_SAMPLING_RANGES = {
    "temperature": (0.0, 2.0 + 1e-9), "top_p": (0.0, 1.0), "min_p": (0.0, 1.0),
    "frequency_penalty": (-2.0, 2.0), "presence_penalty": (-2.0, 2.0), "repetition_penalty": (0.0, 2.0),
}


@dataclass(slots=True)
class GenerationRequest:
    """One generation request, whatever the endpoint. (Slots: built per request, and
    about half the time of a dict-backed instance to construct.)"""

    model: str | None
    stream: bool
    n: int = 1
    max_tokens: int | None = None
    min_tokens: int = 0
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    no_stop_trim: bool = False
    skip_special_tokens: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    include_usage: bool = False
    user: str | None = None
    # chat only
    messages: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    separate_reasoning: bool = True
    continue_final_message: bool = False
    # completions only
    prompt: str | list[int] | None = None
    echo: bool = False
    rid: str | None = None


def _get(body: Mapping[str, Any], key: str, types: type | tuple[type, ...], default: Any = None) -> Any:
    value = body.get(key, default)
    if value is None:
        return default
    return _checked(key, value, types)


def _checked(key: str, value: Any, types: type | tuple[type, ...]) -> Any:
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise BadRequest(f"'{key}' must be {_names(types)}, not a boolean", param=key)
    if not isinstance(value, types):
        raise BadRequest(f"'{key}' must be {_names(types)}", param=key)
    return value


def _fill(req: GenerationRequest, body: Mapping[str, Any], fields: tuple[tuple[str, type], ...]) -> None:
    """``req.<key> = body[key]`` for each key given (and not null), type-checked, in order.
    Absent keys keep the dataclass default without a call per key: most requests set
    a handful of the fields read here."""
    get = body.get
    for key, types in fields:
        value = get(key)
        if value is not None:
            setattr(req, key, _checked(key, value, types))


def _names(types: type | tuple[type, ...]) -> str:
    ts = types if isinstance(types, tuple) else (types,)
    return " or ".join({int: "an integer", float: "a number", str: "a string", bool: "a boolean",
                        list: "an array", dict: "an object"}.get(t, t.__name__) for t in ts)


_NUMBER = (int, float)
_SAMPLING = ("temperature", "top_p", "min_p", "frequency_penalty", "presence_penalty", "repetition_penalty")
_FLAGS = (("ignore_eos", bool),)
_IDS = (("top_k", int), ("seed", int), ("user", str), ("rid", str))
_CHAT_FLAGS = (("logprobs", bool), ("top_logprobs", int))
_CHAT_TAIL = (("separate_reasoning", bool), ("continue_final_message", bool))


def _common(body: Mapping[str, Any]) -> GenerationRequest:
    if type(body) is not dict and not isinstance(body, Mapping):  # no ABC check for dicts
        raise BadRequest("the request body must be a JSON object")
    get = body.get
    req = GenerationRequest(model=_get(body, "model", str), stream=_get(body, "stream", bool, False))
    if get("n") is not None:
        req.n = _checked("n", body["n"], int)
        if not 1 <= req.n <= 128:
            raise BadRequest("'n' must be between 1 and 128", param="n")
    max_tokens = _get(body, "max_completion_tokens", int, None)
    if max_tokens is None:
        max_tokens = _get(body, "max_tokens", int, None)
    if max_tokens is not None and not 0 <= max_tokens <= U32_MAX:
        raise BadRequest(f"'max_tokens' must be between 0 and {U32_MAX}", param="max_tokens")
    req.max_tokens = max_tokens
    if get("min_tokens") is not None:
        req.min_tokens = min_tokens = _checked("min_tokens", body["min_tokens"], int)
        if not 0 <= min_tokens <= (U32_MAX if max_tokens is None else max_tokens):
            raise BadRequest("'min_tokens' must be between 0 and max_tokens", param="min_tokens")
    stop = get("stop")
    if stop is not None:
        req.stop = _stops(stop)
    ids = get("stop_token_ids")
    if ids is not None:
        ids = _checked("stop_token_ids", ids, list)
        if len(ids) > MAX_STOP_TOKEN_IDS or not all(
            type(i) is int and 0 <= i <= U32_MAX for i in ids
        ):
            raise BadRequest(f"'stop_token_ids' must be an array of token ids (at most {MAX_STOP_TOKEN_IDS})",
                             param="stop_token_ids")
        req.stop_token_ids = ids
    _fill(req, body, _FLAGS)
    if get("no_stop_trim") is not None or get("include_stop_str_in_output") is not None:
        req.no_stop_trim = _get(body, "no_stop_trim", bool, False) or _get(body, "include_stop_str_in_output", bool, False)
    if get("skip_special_tokens") is not None:
        req.skip_special_tokens = _checked("skip_special_tokens", body["skip_special_tokens"], bool)
    for name in _SAMPLING:
        value = get(name)
        if value is not None:
            value = float(_checked(name, value, _NUMBER))
            lo, hi = _SAMPLING_RANGES[name]
            if not lo <= value <= hi:
                raise BadRequest(f"'{name}' must be between {lo:g} and {hi:g}", param=name)
            setattr(req, name, value)
    _fill(req, body, _IDS)
    if not -1 <= req.top_k <= I32_MAX:
        raise BadRequest(f"'top_k' must be -1 (no limit) or between 0 and {I32_MAX}", param="top_k")
    if req.seed is not None and not I64_MIN <= req.seed <= I64_MAX:
        raise BadRequest("'seed' must be a 64-bit integer", param="seed")
    if get("stream_options") is not None:
        options = _checked("stream_options", body["stream_options"], dict)
        req.include_usage = bool(options.get("include_usage")) and req.stream
    return req


def _stops(stop: Any) -> list[str]:
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise BadRequest("'stop' must be a string or an array of strings", param="stop")
    stop = [s for s in stop if s]  # empty stop strings never match (SMG drops them too)
    if len(stop) > MAX_STOPS or any(len(s.encode()) > MAX_STOP_BYTES for s in stop):
        raise BadRequest(f"at most {MAX_STOPS} stop strings of at most {MAX_STOP_BYTES} bytes", param="stop")
    return stop


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """``messages`` as the chat template gets them: objects with a string ``role`` and
    string (or text-part) ``content``; content parts are joined into their text."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest(f"messages[{i}] must be an object with a 'role' (a string)", param="messages")
        content = m.get("content")
        if isinstance(content, list):  # content parts: keep the text parts
            parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            if not all(isinstance(p, str) for p in parts):
                raise BadRequest(f"messages[{i}].content: a text part's 'text' must be a string", param="messages")
            m = {**m, "content": "".join(parts)}
            messages[i] = m
        elif content is not None and not isinstance(content, str):
            raise BadRequest(f"messages[{i}].content must be a string or an array", param="messages")
        for key, types in _MESSAGE_FIELDS:
            value = m.get(key)
            if value is not None and not isinstance(value, types):
                raise BadRequest(f"messages[{i}].{key} must be {_names(types)}", param="messages")
    return messages


_MESSAGE_FIELDS = (("name", str), ("tool_call_id", str), ("tool_calls", list), ("reasoning_content", str))
_TOOL_CHOICES = ("none", "auto", "required")


def _tools(tools: Any) -> list[dict[str, Any]]:
    tools = _checked("tools", tools, list)
    for t in tools:
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise BadRequest("each tool must be {'type': 'function', 'function': {'name': ...}}", param="tools")
        if fn.get("parameters") is not None and not isinstance(fn["parameters"], dict):
            raise BadRequest("a tool's 'function.parameters' must be an object (a JSON schema)", param="tools")
    return tools


def _tool_choice(choice: Any) -> Any:
    if choice is None or choice in _TOOL_CHOICES:
        return choice
    fn = choice.get("function") if isinstance(choice, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise BadRequest("'tool_choice' must be 'none', 'auto', 'required' or "
                         "{'type': 'function', 'function': {'name': ...}}", param="tool_choice")
    return choice


def _response_format(rf: dict[str, Any] | None) -> dict[str, Any] | None:
    if rf is None:
        return None
    kind = rf.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise BadRequest("'response_format.type' must be 'text', 'json_object' or 'json_schema'",
                         param="response_format")
    if kind == "json_schema":
        spec = rf.get("json_schema")
        if spec is not None and not isinstance(spec, dict):
            raise BadRequest("'response_format.json_schema' must be an object", param="response_format")
        schema = (spec or {}).get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise BadRequest("'response_format.json_schema.schema' must be an object", param="response_format")
    return rf


def parse_chat(body: Mapping[str, Any]) -> GenerationRequest:
    req = _common(body)
    req.messages = check_messages(body.get("messages"))
    get = body.get
    if get("tools") is not None:
        req.tools = _tools(body["tools"])
    req.tool_choice = _tool_choice(get("tool_choice"))
    req.response_format = _response_format(_get(body, "response_format", dict, None))
    _fill(req, body, _CHAT_FLAGS)
    if not 0 <= req.top_logprobs <= MAX_TOP_LOGPROBS:
        raise BadRequest(f"'top_logprobs' must be between 0 and {MAX_TOP_LOGPROBS}", param="top_logprobs")
    if get("chat_template_kwargs") is not None:
        req.template_kwargs = dict(_checked("chat_template_kwargs", body["chat_template_kwargs"], dict))
    _fill(req, body, _CHAT_TAIL)
    return req


def parse_completion(body: Mapping[str, Any]) -> GenerationRequest:
    req = _common(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, list):
        if not prompt or not all(type(t) is int and 0 <= t <= U32_MAX for t in prompt):
            raise BadRequest("'prompt' must be a string or an array of token ids (one prompt per request)", param="prompt")
    elif not isinstance(prompt, str):
        raise BadRequest("'prompt' must be a string or an array of token ids", param="prompt")
    req.prompt = prompt
    req.echo = _get(body, "echo", bool, False)
    lp = body.get("logprobs")
    if lp is not None:
        if isinstance(lp, bool) or not isinstance(lp, int) or not 0 <= lp <= MAX_TOP_LOGPROBS:
            raise BadRequest(f"'logprobs' must be an integer between 0 and {MAX_TOP_LOGPROBS}", param="logprobs")
        req.logprobs, req.top_logprobs = True, lp
    return req
