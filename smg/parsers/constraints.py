"""Structural-tag constraints: decode tool calls in a model's native format.

``structural_tag_for(parser_name, tools, tool_choice)`` returns the JSON text of an
xgrammar structural tag (the worker's ``structural_tag`` sampling constraint) or None
when the format has none or no constraint applies. While the model writes plain text it
is free; once it emits a *trigger* (the format's call marker) the call must follow
``begin`` + arguments matching the tool's JSON schema + ``end``.

Two shapes, both accepted by xgrammar (and by SGLang/vLLM as ``structural_tag``):

- ``tool_choice="auto"`` with a JSON-argument format (qwen/hermes, mistral, kimik2,
  inkling): the classic shape ``{"type": "structural_tag", "structures": [{"begin",
  "schema", "end"}, ...], "triggers": [...]}`` — calls are constrained when they start,
  and the model may also answer without calling.
- ``"required"`` or a named function, and kimi_k3 always: the ``format`` shape
  ``{"type": "structural_tag", "format": {"type": "triggered_tags", "triggers", "tags",
  "at_least_one"}}``. ``at_least_one`` forces a call (the classic shape cannot), and
  kimi_k3's XTML arguments are not JSON, so they need ``sequence``/``any_text`` pieces.

A named ``tool_choice`` restricts the tags to that tool; ``"none"`` gives None.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from smg.parsers.validation import selected_tools

__all__ = ["STRUCTURAL_TAG_PARSERS", "has_structural_tag", "structural_tag_for"]

Tool = Mapping[str, Any]
# (begin, schema, end) for one declared tool; the index is the tool's position.
Structure = tuple[str, Any, str]


def _fn(tool: Tool) -> Mapping[str, Any]:
    return tool.get("function", tool)


def _schema(tool: Tool) -> Any:
    params = _fn(tool).get("parameters")
    return params if params else {"type": "object"}


def _q(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)


def _hermes(name: str, i: int) -> list[tuple[str, str]]:
    return [(f'<tool_call>\n{{"name": {_q(name)}, "arguments": ', "}\n</tool_call>")]


def _mistral(name: str, i: int) -> list[tuple[str, str]]:
    return [(f'[TOOL_CALLS] [{{"name": {_q(name)}, "arguments": ', "}]")]


def _kimik2(name: str, i: int) -> list[tuple[str, str]]:
    call = f"<|tool_call_begin|>functions.{name}:{i}<|tool_call_argument_begin|>"
    return [("<|tool_calls_section_begin|>" + call, "<|tool_call_end|>"), (call, "<|tool_call_end|>")]


def _inkling(name: str, i: int) -> list[tuple[str, str]]:
    return [(f'<|content_invoke_tool_json|>{{"name":{_q(name)},"args":', "}<|end_message|>")]


# parser name -> (how one tool's call is framed, triggers)
_JSON_FORMATS: dict[str, tuple[Callable[[str, int], list[tuple[str, str]]], tuple[str, ...]]] = {
    "qwen": (_hermes, ("<tool_call>",)),
    "hermes": (_hermes, ("<tool_call>",)),
    "mistral": (_mistral, ("[TOOL_CALLS]",)),
    "kimik2": (_kimik2, ("<|tool_calls_section_begin|>", "<|tool_call_begin|>")),
    "kimi_k2": (_kimik2, ("<|tool_calls_section_begin|>", "<|tool_call_begin|>")),
    "inkling": (_inkling, ("<|content_invoke_tool_json|>",)),
}
STRUCTURAL_TAG_PARSERS = frozenset(_JSON_FORMATS) | {"kimi_k3", "kimik3"}


def has_structural_tag(parser_name: str | None) -> bool:
    return parser_name in STRUCTURAL_TAG_PARSERS


def structural_tag_for(
    parser_name: str | None, tools: Sequence[Tool] | None, tool_choice: Any = "auto"
) -> str | None:
    """The structural tag (JSON text) for ``tools`` in ``parser_name``'s format, or None.

    Raises ValueError for a named ``tool_choice`` that is not among ``tools``."""
    if not tools or not has_structural_tag(parser_name):
        return None
    chosen = [t for t in selected_tools(tools, tool_choice) if _fn(t).get("name")]
    if not chosen:
        return None
    forced = tool_choice == "required" or isinstance(tool_choice, Mapping)
    if parser_name in ("kimi_k3", "kimik3"):
        tag = _k3_tag(chosen, forced)
    else:
        frame, triggers = _JSON_FORMATS[parser_name or ""]
        structures = [
            (begin, _schema(t), end)
            for i, t in enumerate(chosen)
            for begin, end in frame(_fn(t)["name"], i)
        ]
        tag = _format_tag(structures, triggers, True) if forced else _classic_tag(structures, triggers)
    return json.dumps(tag, ensure_ascii=False)


def _classic_tag(structures: list[Structure], triggers: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "structural_tag",
        "structures": [{"begin": b, "schema": s, "end": e} for b, s, e in structures],
        "triggers": list(triggers),
    }


def _format_tag(structures: list[Structure], triggers: Sequence[str], at_least_one: bool) -> dict[str, Any]:
    tags = [
        {"begin": b, "content": {"type": "json_schema", "json_schema": s}, "end": e}
        for b, s, e in structures
    ]
    return _triggered(tags, triggers, at_least_one)


def _triggered(tags: list[Any], triggers: Sequence[str], at_least_one: bool) -> dict[str, Any]:
    return {
        "type": "structural_tag",
        "format": {"type": "triggered_tags", "triggers": list(triggers), "tags": tags, "at_least_one": at_least_one},
    }


# --- Kimi-K3 XTML -------------------------------------------------------------------

_OPEN, _CLOSE, _SEP = "<|open|>", "<|close|>", "<|sep|>"
_K3_TOOLS_OPEN, _K3_TOOLS_CLOSE = f"{_OPEN}tools{_SEP}", f"{_CLOSE}tools{_SEP}"
# The prompt leaves a channel open (think or response); it must close before tools.
_K3_PREFIXES = ("", f"{_CLOSE}think{_SEP}", f"{_CLOSE}response{_SEP}")
_FREE_TEXT = {"type": "any_text", "excludes": [_CLOSE, _OPEN, _SEP]}


def _const(value: str) -> dict[str, str]:
    return {"type": "const_string", "value": value}


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;")


def _k3_value(spec: Mapping[str, Any]) -> tuple[str, Any] | None:
    """(type attribute, value grammar) for one property; None when the schema is vague."""
    enum = spec.get("enum")
    if enum and all(isinstance(v, str) for v in enum):
        return "string", {"type": "or", "elements": [_const(v) for v in enum]}
    t = spec.get("type")
    if t == "string":
        return "string", _FREE_TEXT  # string values are written raw, not JSON-quoted
    if t in ("integer", "number"):
        return "number", {"type": "json_schema", "json_schema": dict(spec)}
    if t in ("boolean", "object", "array"):
        return t, {"type": "json_schema", "json_schema": dict(spec)}
    if t == "null":
        return "null", _const("null")
    return None


def _k3_argument(key: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    shape = _k3_value(spec)
    head = f'{_OPEN}argument key="{_attr(key)}" type="'
    if shape is None:
        pieces: list[Any] = [_const(head), {"type": "any_text", "excludes": ['"', "<|"]}, _const(f'"{_SEP}'), _FREE_TEXT]
    else:
        pieces = [_const(f'{head}{shape[0]}"{_SEP}'), shape[1]]
    return {"type": "sequence", "elements": [*pieces, _const(f"{_CLOSE}argument{_SEP}")]}


def _k3_arguments(schema: Mapping[str, Any]) -> dict[str, Any]:
    props = schema.get("properties") or {}
    if not props:  # no usable schema: any well-formed arguments
        any_arg = {
            "type": "sequence",
            "elements": [
                _const(f'{_OPEN}argument key="'),
                {"type": "any_text", "excludes": ['"', "<|"]},
                _const('" type="'),
                {"type": "any_text", "excludes": ['"', "<|"]},
                _const(f'"{_SEP}'),
                _FREE_TEXT,
                _const(f"{_CLOSE}argument{_SEP}"),
            ],
        }
        return {"type": "star", "content": any_arg}
    required = set(schema.get("required") or ())
    elements = []
    for key, spec in props.items():
        arg = _k3_argument(key, spec if isinstance(spec, Mapping) else {})
        elements.append(arg if key in required else {"type": "optional", "content": arg})
    return {"type": "sequence", "elements": elements}


def _k3_tag(tools: Sequence[Tool], at_least_one: bool) -> dict[str, Any]:
    calls = [
        {
            "type": "sequence",
            "elements": [
                _const(f'{_OPEN}call tool="{_attr(_fn(t)["name"])}" index="'),
                {"type": "regex", "pattern": "[1-9][0-9]*"},
                _const(f'"{_SEP}'),
                _k3_arguments(_schema(t)),
                _const(f"{_CLOSE}call{_SEP}"),
            ],
        }
        for t in tools
    ]
    content = {"type": "plus", "content": {"type": "or", "elements": calls}}
    tags = [{"begin": p + _K3_TOOLS_OPEN, "content": content, "end": _K3_TOOLS_CLOSE} for p in _K3_PREFIXES]
    return _triggered(tags, [_K3_TOOLS_OPEN, *_K3_PREFIXES[1:]], at_least_one)
