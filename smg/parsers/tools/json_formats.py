"""Tool-call formats whose arguments are JSON written by the model.

hermes/qwen ``<tool_call>{"name", "arguments"}</tool_call>``, llama3
``<|python_tag|>{...}`` (or a bare JSON object), json (an object or array),
mistral ``[TOOL_CALLS] [...]`` and ``[TOOL_CALLS]name[ARGS]{...}``, deepseek v3
(fenced json) and v3.1 (bare json), kimi-k2 sections, cohere ``<|START_ACTION|>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from smg.parsers.core import Snapshot, SnapshotBuilder
from smg.parsers.scan import held_suffix, json_value_end
from smg.parsers.tools.base import (
    MarkerToolParser,
    emit_object_call,
    emit_raw_args_call,
    skip_ws,
)
from smg.parsers.tools.channels import ChannelToolParser

__all__ = [
    "CohereParser",
    "DeepSeekV3Parser",
    "DeepSeekV31Parser",
    "HermesParser",
    "JsonParser",
    "KimiK2Parser",
    "Llama3Parser",
    "MistralParser",
]


def _object_list(text: str, j: int, b: SnapshotBuilder, final: bool, hold=(), sep=",;") -> int | None:
    """Objects separated by ``sep``/whitespace from ``j``; stops at the first non-object."""
    n = len(text)
    while True:
        while j < n and (text[j].isspace() or text[j] in sep):
            j += 1
        if j >= n:
            return n if final else None
        if text[j] != "{":
            return j
        end = emit_object_call(text, j, b, final, hold)
        if end is None:
            return None
        j = end


def _array_or_objects(text: str, j: int, b: SnapshotBuilder, final: bool, hold=()) -> int | None:
    """A JSON array of call objects at ``j``, or objects one after another."""
    n = len(text)
    j = skip_ws(text, j)
    if j >= n:
        return n if final else None
    if text[j] == "[":
        end = _object_list(text, j + 1, b, final, hold, sep=",")
        if end is None:
            return None
        end = skip_ws(text, end)
        if end < n and text[end] == "]":
            return end + 1
        return end if final or end < n else None
    return _object_list(text, j, b, final, hold)


@dataclass(frozen=True)
class HermesParser(MarkerToolParser):
    name: str = "qwen"
    starts = ("<tool_call>",)
    END = "</tool_call>"

    def region(self, text, i, marker, b, final):
        n = len(text)
        j = skip_ws(text, i + len(marker))
        if j >= n:
            return n if final else None
        end = emit_object_call(text, j, b, final, (self.END,)) if text[j] == "{" else j
        if end is None:
            return None
        stop = text.find(self.END, end)
        if stop == -1:
            return n if final else None
        return stop + len(self.END)


@dataclass(frozen=True)
class JsonParser(MarkerToolParser):
    """The whole output is a call object or an array of them (OpenAI-style JSON mode)."""

    name: str = "json"

    def has_markers(self, text: str) -> bool:
        return text.lstrip()[:1] in ("{", "[")

    def parse(self, text: str, final: bool, state: object = None) -> Snapshot:
        b = SnapshotBuilder()
        j = skip_ws(text, 0)
        if j >= len(text):
            if final:
                b.content(text)
            return b.build()
        if text[j] not in "[{":
            b.content(text)
            return b.build()
        end = _array_or_objects(text, j, b, final)
        if end is not None and final:
            b.content(text[end:].strip())
        return b.build()


@dataclass(frozen=True)
class Llama3Parser(JsonParser):
    """``<|python_tag|>`` followed by call objects (``;``-separated), or bare JSON."""

    name: str = "llama3"
    TAG = "<|python_tag|>"

    def has_markers(self, text: str) -> bool:
        return self.TAG in text or super().has_markers(text)

    def parse(self, text: str, final: bool, state: object = None) -> Snapshot:
        j = skip_ws(text, 0)
        if j < len(text) and text[j] in "[{":  # bare JSON decides: a later tag is text
            return super().parse(text, final)
        i = text.find(self.TAG)
        if i == -1:
            keep = 0 if final else held_suffix(text, (self.TAG,))
            return super().parse(text[: len(text) - keep], final)
        b = SnapshotBuilder()
        b.content(text[:i])
        _object_list(text, i + len(self.TAG), b, final)
        return b.build()


@dataclass(frozen=True)
class MistralParser(MarkerToolParser):
    name: str = "mistral"
    starts = ("[TOOL_CALLS]",)
    ARGS = "[ARGS]"

    def region(self, text, i, marker, b, final):
        n = len(text)
        j = skip_ws(text, i + len(marker))
        if j >= n:
            return n if final else None
        if text[j] in "[{":
            return _array_or_objects(text, j, b, final)
        k = text.find(self.ARGS, j)
        if k == -1:
            return n if final else None
        name = text[j:k].strip()
        start = skip_ws(text, k + len(self.ARGS))
        call = b.call(name)
        vend = json_value_end(text, start) if start < n else None
        if vend is None:
            call.arguments = text[start:] if start < n else ""
            return n if final else None
        call.arguments = text[start:vend]
        call.done = True
        return vend


_DS_CALLS_BEGIN = "<｜tool▁calls▁begin｜>"
_DS_CALLS_END = "<｜tool▁calls▁end｜>"
_DS_CALL_BEGIN = "<｜tool▁call▁begin｜>"
_DS_CALL_END = "<｜tool▁call▁end｜>"
_DS_SEP = "<｜tool▁sep｜>"


def _section(text, i, marker, b, final, begin, section_end, call_begin, one_call):
    """Calls ``call_begin ... `` inside an optional section; ``one_call`` parses one."""
    n = len(text)
    j = i + len(marker) if marker == begin else i
    while True:
        j = skip_ws(text, j)
        if j >= n:
            return n if final else None
        if text.startswith(section_end, j):
            return j + len(section_end)
        if text.startswith(call_begin, j):
            end = one_call(text, j + len(call_begin), b, final)
            if end is None:
                return None
            j = end
            continue
        if section_end.startswith(text[j:]) or call_begin.startswith(text[j:]):
            return n if final else None  # a marker still arriving
        return j  # something else: the section ends here


def _ds_v3_call(text, j, b, final):
    n = len(text)
    sep = text.find(_DS_SEP, j)
    if sep == -1:
        return n if final else None
    nl = text.find("\n", sep)
    if nl == -1:
        return n if final else None
    name = text[sep + len(_DS_SEP) : nl].strip()
    k = skip_ws(text, nl)
    fence = "```json"
    if text.startswith(fence, k):
        k += len(fence)
    elif fence.startswith(text[k:]) and not final:
        return None
    end = emit_raw_args_call(text, name, k, _DS_CALL_END, b, final)
    if end is not None and b.calls[-1].arguments.endswith("```"):
        b.calls[-1].arguments = b.calls[-1].arguments[:-3].rstrip()
    return end


def _ds_v31_call(text, j, b, final):
    sep = text.find(_DS_SEP, j)
    if sep == -1:
        return len(text) if final else None
    name = text[j:sep].strip()
    return emit_raw_args_call(text, name, sep + len(_DS_SEP), _DS_CALL_END, b, final)


@dataclass(frozen=True)
class DeepSeekV3Parser(MarkerToolParser):
    name: str = "deepseek"
    starts = (_DS_CALLS_BEGIN, _DS_CALL_BEGIN)

    def region(self, text, i, marker, b, final):
        return _section(
            text, i, marker, b, final, _DS_CALLS_BEGIN, _DS_CALLS_END, _DS_CALL_BEGIN, _ds_v3_call
        )


@dataclass(frozen=True)
class DeepSeekV31Parser(MarkerToolParser):
    name: str = "deepseek31"
    starts = (_DS_CALLS_BEGIN, _DS_CALL_BEGIN)

    def region(self, text, i, marker, b, final):
        return _section(
            text, i, marker, b, final, _DS_CALLS_BEGIN, _DS_CALLS_END, _DS_CALL_BEGIN, _ds_v31_call
        )


_K_SECTION_BEGIN = "<|tool_calls_section_begin|>"
_K_SECTION_END = "<|tool_calls_section_end|>"
_K_CALL_BEGIN = "<|tool_call_begin|>"
_K_ARG_BEGIN = "<|tool_call_argument_begin|>"
_K_CALL_END = "<|tool_call_end|>"


def _kimi_call(text, j, b, final):
    k = text.find(_K_ARG_BEGIN, j)
    if k == -1:
        return len(text) if final else None
    ident = text[j:k].strip()
    name = ident.split(".", 1)[1] if ident.startswith("functions.") else ident
    name = name.rsplit(":", 1)[0] if ":" in name else name
    return emit_raw_args_call(text, name, k + len(_K_ARG_BEGIN), _K_CALL_END, b, final)


@dataclass(frozen=True)
class KimiK2Parser(MarkerToolParser):
    name: str = "kimik2"
    starts = (_K_SECTION_BEGIN, _K_CALL_BEGIN)

    def region(self, text, i, marker, b, final):
        return _section(
            text, i, marker, b, final, _K_SECTION_BEGIN, _K_SECTION_END, _K_CALL_BEGIN, _kimi_call
        )


@dataclass(frozen=True)
class CohereParser(ChannelToolParser):
    """``<|START_ACTION|>`` call objects ``<|END_ACTION|>``; the response/text block
    tokens around the answer are removed from the content."""

    name: str = "cohere"
    starts = ("<|START_ACTION|>",)
    drops = ("<|START_RESPONSE|>", "<|END_RESPONSE|>", "<|START_TEXT|>", "<|END_TEXT|>")
    END = "<|END_ACTION|>"

    def region(self, text, i, marker, b, final):
        if marker in self.drops:
            return i + len(marker)
        n = len(text)
        end = _array_or_objects(text, i + len(marker), b, final, (self.END,))
        if end is None:
            return None
        stop = text.find(self.END, end)
        if stop == -1:
            return n if final else None
        return stop + len(self.END)
