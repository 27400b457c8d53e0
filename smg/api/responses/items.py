"""Responses input items: checked and normalized (with ids) for storage, and turned into
the chat messages the shared pipeline takes.

Accepted item types (OpenAI's): ``message`` (roles user, system, developer, assistant;
content a string or ``input_text``/``input_image``/``output_text``/``refusal`` parts),
``function_call``, ``function_call_output`` and ``reasoning``. Anything else is a 400
naming the field (``input[2].type``).
"""

from __future__ import annotations

from typing import Any

from smg.api.common import new_id
from smg.errors import BadRequest

__all__ = ["normalize_input", "normalize_items", "to_messages"]

Json = dict[str, Any]

ROLES = ("user", "system", "developer", "assistant")
ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}


def _bad(where: str, what: str) -> BadRequest:
    return BadRequest(f"'{where}' {what}", param=where)


def _str(item: Json, key: str, where: str, *, required: bool = True) -> str | None:
    value = item.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise _bad(f"{where}.{key}", "must be a string")
    return value


def normalize_input(value: Any, param: str = "input") -> list[Json]:
    """``input`` (a string or an array of items) as stored items, each with an id."""
    if isinstance(value, str):
        return [_message({"role": "user", "content": value}, param)]
    if not isinstance(value, list):
        raise _bad(param, "must be a string or an array of input items")
    return normalize_items(value, param)


def normalize_items(items: list[Any], param: str) -> list[Json]:
    out = []
    for i, item in enumerate(items):
        where = f"{param}[{i}]"
        if not isinstance(item, dict):
            raise _bad(where, "must be an object (an input item)")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            out.append(_message(item, where))
        elif kind == "function_call":
            out.append({
                "type": "function_call", "id": _id(item, "fc"), "call_id": _str(item, "call_id", where),
                "name": _str(item, "name", where), "arguments": _str(item, "arguments", where),
                "status": "completed",
            })
        elif kind == "function_call_output":
            output = item.get("output")
            if isinstance(output, list):
                output = "".join(_part_text(p, f"{where}.output[{k}]") for k, p in enumerate(output))
            elif not isinstance(output, str):
                raise _bad(f"{where}.output", "must be a string or an array of content parts")
            out.append({"type": "function_call_output", "id": _id(item, "fco"),
                        "call_id": _str(item, "call_id", where), "output": output, "status": "completed"})
        elif kind == "reasoning":
            out.append(_reasoning(item, where))
        elif kind is None:
            raise _bad(f"{where}.type", "is missing")
        else:
            raise _bad(f"{where}.type", f"is {kind!r}: only message, function_call, function_call_output "
                       "and reasoning items are supported")
    return out


def _id(item: Json, prefix: str) -> str:
    given = item.get("id")
    return given if isinstance(given, str) and given else new_id(prefix)


def _message(item: Json, where: str) -> Json:
    role = item.get("role")
    if role not in ROLES:
        raise _bad(f"{where}.role", f"must be one of {', '.join(ROLES)}")
    content = item.get("content")
    text_type = "output_text" if role == "assistant" else "input_text"
    if isinstance(content, str):
        parts: list[Json] = [{"type": text_type, "text": content}]
        if role == "assistant":
            parts[0]["annotations"] = []
    elif isinstance(content, list):
        parts = [_part(p, f"{where}.content[{k}]", role) for k, p in enumerate(content)]
    else:
        raise _bad(f"{where}.content", "must be a string or an array of content parts")
    return {"type": "message", "id": _id(item, "msg"), "role": role, "content": parts, "status": "completed"}


_PARTS = {
    "input_text": ("user", "system", "developer"), "input_image": ("user",),
    "output_text": ("assistant",), "refusal": ("assistant",),
}


def _part(part: Any, where: str, role: str) -> Json:
    if not isinstance(part, dict):
        raise _bad(where, "must be an object (a content part)")
    kind = part.get("type")
    roles = _PARTS.get(kind) if isinstance(kind, str) else None
    if roles is None:
        raise _bad(f"{where}.type", f"is {kind!r}: one of {', '.join(_PARTS)}")
    if role not in roles and not (kind == "input_text" and role == "assistant"):
        raise _bad(f"{where}.type", f"{kind!r} is not a part of a {role} message")
    if kind == "input_image":
        url, file_id = part.get("image_url"), part.get("file_id")
        if not isinstance(url, str) and not isinstance(file_id, str):
            raise _bad(f"{where}.image_url", "must be a string (an image URL or data URL)")
        detail = part.get("detail", "auto")
        if detail not in ("auto", "low", "high", "original"):
            raise _bad(f"{where}.detail", "must be auto, low, high or original")
        return {"type": "input_image", "image_url": url, "file_id": file_id, "detail": detail}
    if kind == "refusal":
        return {"type": "refusal", "refusal": _str(part, "refusal", where)}
    out = {"type": kind, "text": _str(part, "text", where)}
    if kind == "output_text":
        out["annotations"] = []
    return out


def _part_text(part: Any, where: str) -> str:
    if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text"):
        raise _bad(where, "must be an input_text part")
    return _str(part, "text", where) or ""


def _reasoning(item: Json, where: str) -> Json:
    summary = item.get("summary", [])
    content = item.get("content")
    if not isinstance(summary, list):
        raise _bad(f"{where}.summary", "must be an array")
    for k, s in enumerate(summary):
        if not isinstance(s, dict) or not isinstance(s.get("text"), str):
            raise _bad(f"{where}.summary[{k}]", "must be {'type': 'summary_text', 'text': ...}")
    out: Json = {"type": "reasoning", "id": _id(item, "rs"),
                 "summary": [{"type": "summary_text", "text": s["text"]} for s in summary]}
    if content is not None:
        if not isinstance(content, list):
            raise _bad(f"{where}.content", "must be an array")
        for k, c in enumerate(content):
            if not isinstance(c, dict) or not isinstance(c.get("text"), str):
                raise _bad(f"{where}.content[{k}]", "must be {'type': 'reasoning_text', 'text': ...}")
        out["content"] = [{"type": "reasoning_text", "text": c["text"]} for c in content]
    return out


# -- to chat messages --------------------------------------------------------------------

def _text(parts: list[Json]) -> str:
    return "".join(p.get("text") or p.get("refusal") or "" for p in parts if p["type"] != "input_image")


def _chat_content(parts: list[Json]) -> Any:
    if len(parts) == 1 and parts[0]["type"] != "input_image":  # the usual item: one text part
        p = parts[0]
        return p.get("text") or p.get("refusal") or ""
    if not any(p["type"] == "input_image" for p in parts):
        return _text(parts)
    out = []
    for p in parts:
        if p["type"] == "input_image":
            if p.get("image_url"):
                out.append({"type": "image_url", "image_url": {"url": p["image_url"], "detail": p["detail"]}})
        else:
            out.append({"type": "text", "text": p.get("text") or ""})
    return out


def to_messages(items: list[Json], instructions: str | None) -> list[Json]:
    """Chat messages for ``items`` (the whole context, oldest first): consecutive
    function calls become one assistant message with ``tool_calls``; a reasoning item's
    text goes into the next assistant message's ``reasoning_content``."""
    messages: list[Json] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    reasoning = ""
    for item in items:
        kind = item["type"]
        if kind == "reasoning":
            reasoning += "".join(c["text"] for c in item.get("content") or []) or \
                "".join(s["text"] for s in item.get("summary") or [])
        elif kind == "message":
            role = "system" if item["role"] == "developer" else item["role"]
            msg: Json = {"role": role, "content": _chat_content(item["content"])}
            if role == "assistant" and reasoning:
                msg["reasoning_content"], reasoning = reasoning, ""
            messages.append(msg)
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and not reasoning:
                last.setdefault("tool_calls", []).append(call)
            else:
                msg = {"role": "assistant", "content": "", "tool_calls": [call]}
                if reasoning:
                    msg["reasoning_content"], reasoning = reasoning, ""
                messages.append(msg)
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
    return messages
