"""Validate OpenAI chat/completion requests and turn them into what the pipeline needs.

Only the fields the gateway acts on are read; unknown fields are ignored (as OpenAI
servers do). Every problem is a ``BadRequest`` naming the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from smg.errors import BadRequest

__all__ = ["GenerationRequest", "parse_chat", "parse_completion"]

MAX_STOPS = 16
MAX_STOP_BYTES = 256


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
    if max_tokens is not None and max_tokens < 0:
        raise BadRequest("'max_tokens' must be >= 0", param="max_tokens")
    req.max_tokens = max_tokens
    req.min_tokens = _get(body, "min_tokens", int, 0)
    stop = get("stop")
    if stop is not None:
        req.stop = _stops(stop)
    ids = get("stop_token_ids")
    if ids is not None:
        ids = _checked("stop_token_ids", ids, list)
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
            raise BadRequest("'stop_token_ids' must be an array of token ids", param="stop_token_ids")
        req.stop_token_ids = ids
    _fill(req, body, _FLAGS)
    if get("no_stop_trim") is not None or get("include_stop_str_in_output") is not None:
        req.no_stop_trim = _get(body, "no_stop_trim", bool, False) or _get(body, "include_stop_str_in_output", bool, False)
    if get("skip_special_tokens") is not None:
        req.skip_special_tokens = _checked("skip_special_tokens", body["skip_special_tokens"], bool)
    for name in _SAMPLING:
        value = get(name)
        if value is not None:
            setattr(req, name, float(_checked(name, value, _NUMBER)))
    if not 0.0 <= req.temperature <= 2.0 + 1e-9:
        raise BadRequest("'temperature' must be between 0 and 2", param="temperature")
    _fill(req, body, _IDS)
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


def parse_chat(body: Mapping[str, Any]) -> GenerationRequest:
    req = _common(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest(f"messages[{i}] must be an object with a 'role'", param="messages")
        content = m.get("content")
        if isinstance(content, list):  # content parts: keep the text parts
            parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            m = {**m, "content": "".join(parts)}
            messages[i] = m
        elif content is not None and not isinstance(content, str):
            raise BadRequest(f"messages[{i}].content must be a string or an array", param="messages")
    req.messages = messages
    get = body.get
    if get("tools") is not None:
        req.tools = _checked("tools", body["tools"], list)
        if not all(isinstance(t, dict) and isinstance((t.get("function") or {}).get("name"), str) for t in req.tools):
            raise BadRequest("each tool must be {'type': 'function', 'function': {'name': ...}}", param="tools")
    req.tool_choice = get("tool_choice")
    req.response_format = _get(body, "response_format", dict, None)
    _fill(req, body, _CHAT_FLAGS)
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
        if not prompt or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in prompt):
            raise BadRequest("'prompt' must be a string or an array of token ids (one prompt per request)", param="prompt")
    elif not isinstance(prompt, str):
        raise BadRequest("'prompt' must be a string or an array of token ids", param="prompt")
    req.prompt = prompt
    req.echo = _get(body, "echo", bool, False)
    lp = body.get("logprobs")
    if lp is not None:
        if isinstance(lp, bool) or not isinstance(lp, int) or lp < 0:
            raise BadRequest("'logprobs' must be an integer >= 0", param="logprobs")
        req.logprobs, req.top_logprobs = True, lp
    return req
