"""Tool-call formats whose arguments are JSON written by the model.

hermes/qwen ``<tool_call>{"name", "arguments"}</tool_call>``, llama3
``<|python_tag|>{...}`` (or a bare JSON object), json (an object or array),
mistral ``[TOOL_CALLS] [...]`` and ``[TOOL_CALLS]name[ARGS]{...}``, deepseek v3
(fenced json) and v3.1 (bare json), kimi-k2 sections, cohere ``<|START_ACTION|>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from smg.parsers.core import Snapshot, SnapshotBuilder
from smg.parsers.scan import json_value_end
from smg.parsers.tools.base import (
    MarkerToolParser,
    TextEnd,
    after_trailer,
    emit_object_call,
    emit_raw_args_call,
    skip_ws,
)
from smg.parsers.tools.channels import ChannelToolParser
from smg.parsers.tools.json_mode import JsonParser, Llama3Parser

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


def array_or_objects(text: str, j: int, b: SnapshotBuilder, final: bool, hold=()) -> int | None:
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
        if text[j] != "{":  # no call object: the marker was written in prose
            if text.startswith(self.END, j):
                return TextEnd(j + len(self.END))
            if not final and self.END.startswith(text[j:]):
                return None
            return TextEnd(i + len(marker))
        ncalls = len(b.calls)
        end = emit_object_call(text, j, b, final, (self.END,))
        if end is None:
            return None
        stop = text.find(self.END, end)
        if stop == -1:
            if len(b.calls) > ncalls:
                b.calls[-1].done = False  # complete only with its closing marker
            return n if final else None
        if len(b.calls) == ncalls:  # an object that names no tool
            return TextEnd(stop + len(self.END))
        return stop + len(self.END)


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
            return array_or_objects(text, j, b, final)
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
# DeepSeek's EOS: written out after the section when the worker ignores EOS (ignore_eos)
DS_EOS = ("<｜end▁of▁sentence｜>",)


def _section(text, i, marker, b, final, begin, section_end, call_begin, one_call, trailer=()):
    """Calls ``call_begin ... `` inside an optional section; ``one_call`` parses one.

    ``begin``/``section_end`` are the section's markers (one string or the variants a
    family writes); a ``trailer`` token right after the section end (an EOS the model
    wrote) is consumed with it."""
    begins = (begin,) if isinstance(begin, str) else begin
    ends = (section_end,) if isinstance(section_end, str) else section_end
    n = len(text)
    j = i + len(marker) if marker in begins else i
    while True:
        j = skip_ws(text, j)
        if j >= n:
            return n if final else None
        end = next((e for e in ends if text.startswith(e, j)), None)
        if end is not None:
            return after_trailer(text, j + len(end), trailer, final)
        if text.startswith(call_begin, j):
            end = one_call(text, j + len(call_begin), b, final)
            if end is None:
                return None
            j = end
            continue
        if any(e.startswith(text[j:]) for e in ends) or call_begin.startswith(text[j:]):
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
            text, i, marker, b, final, _DS_CALLS_BEGIN, _DS_CALLS_END, _DS_CALL_BEGIN, _ds_v3_call, DS_EOS
        )


@dataclass(frozen=True)
class DeepSeekV31Parser(MarkerToolParser):
    name: str = "deepseek31"
    starts = (_DS_CALLS_BEGIN, _DS_CALL_BEGIN)

    def region(self, text, i, marker, b, final):
        return _section(
            text, i, marker, b, final, _DS_CALLS_BEGIN, _DS_CALLS_END, _DS_CALL_BEGIN, _ds_v31_call, DS_EOS
        )


# Kimi-K2 writes the section markers plural or (some checkpoints) singular
_K_SECTION_BEGIN = ("<|tool_calls_section_begin|>", "<|tool_call_section_begin|>")
_K_SECTION_END = ("<|tool_calls_section_end|>", "<|tool_call_section_end|>")
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
    starts = (*_K_SECTION_BEGIN, _K_CALL_BEGIN)

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
        return objects_section(text, i + len(marker), self.END, b, final)


def objects_section(text: str, j: int, end_marker: str, b, final: bool) -> int | None:
    """Call objects (or an array of them) from ``j`` up to ``end_marker``; a section
    that holds no call is text (``TextEnd``)."""
    n = len(text)
    ncalls = len(b.calls)
    end = array_or_objects(text, j, b, final, (end_marker,))
    if end is None:
        return None
    stop = text.find(end_marker, end)
    if stop == -1:
        return n if final else None
    if len(b.calls) == ncalls:
        return TextEnd(stop + len(end_marker))
    return stop + len(end_marker)
