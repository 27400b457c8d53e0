"""Tool-call formats that write one parameter at a time in XML-like tags.

qwen_xml / qwen3-coder ``<function=f><parameter=k>v</parameter></function>``,
minimax-m2 ``<invoke name="f"><parameter name="k">v</parameter></invoke>``,
DeepSeek DSML (v3.2 ``function_calls``, v4 ``tool_calls``; ``string="false"`` values are
JSON; v4.1 writes ``<｜DSML｜ calls>``), step3 ``<steptml:invoke>``, and MiniMax-M3
(tags after a ``]<]minimax[>[`` token, parameters named by their tag). The
``<arg_key>/<arg_value>`` formats (GLM-4.5/4.7, Hunyuan 4, K2-Horizon) are in ``arg_key``.
Arguments are built as a JSON object one complete parameter at a time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import ClassVar

from smg.parsers.core import SnapshotBuilder
from smg.parsers.tools.base import ArgsBuilder, MarkerToolParser, TextEnd, after_trailer, skip_ws, typed_value

__all__ = [
    "DsmlParser",
    "DsmlV4Parser",
    "DsmlV41Parser",
    "MinimaxM3Parser",
    "MinimaxM2Parser",
    "QwenXmlParser",
    "Step3Parser",
]


@dataclass(frozen=True)
class XmlSyntax:
    section_end: str
    call_open: re.Pattern[str]  # group 1: name
    call_open_lit: str
    call_close: str
    param_open: re.Pattern[str]  # group 1: name; optional group 2: string="true|false"
    param_open_lit: str
    param_close: str  # "{name}" in it stands for the parameter's name
    skip: tuple[str, ...] = ()  # wrappers between calls that carry nothing
    trailer: tuple[str, ...] = ()  # a token consumed right after the section end (EOS)


def _incomplete(text: str, j: int, *lits: str) -> bool:
    rest = text[j:]
    return any(lit.startswith(rest) or rest.startswith(lit) for lit in lits)


class XmlToolParser(MarkerToolParser):
    syntax: ClassVar[XmlSyntax]

    def value(self, tool: str, key: str, raw: str, string_flag: str | None) -> object:
        raw = raw.strip("\n") if raw.strip() else raw
        if string_flag == "false":
            try:
                return json.loads(raw)
            except ValueError:
                return raw
        return typed_value(raw, self.schema_type(tool, key))

    def region(self, text, i, marker, b, final):
        syn = self.syntax
        n = len(text)
        j = i + len(marker)
        ncalls = len(b.calls)
        while True:
            j = skip_ws(text, j)
            if j >= n:
                return n if final else None
            if text.startswith(syn.section_end, j):
                end = j + len(syn.section_end)
                if len(b.calls) == ncalls:
                    return TextEnd(end)
                return after_trailer(text, end, syn.trailer, final)
            skipped = next((s for s in syn.skip if text.startswith(s, j)), None)
            if skipped:
                j += len(skipped)
                continue
            m = syn.call_open.match(text, j)
            if m is None:
                if _incomplete(text, j, syn.section_end, syn.call_open_lit, *syn.skip):
                    return n if final else None
                # not a call: the section ends here (no call at all: it was text)
                return j if len(b.calls) > ncalls else TextEnd(i + len(marker))
            end = self._call(text, m, b, final)
            if end is None:
                return None
            j = end

    def _call(self, text: str, m: re.Match[str], b: SnapshotBuilder, final: bool) -> int | None:
        syn = self.syntax
        n = len(text)
        name = m.group(1).strip()
        args = ArgsBuilder(b.call(name))
        j = m.end()
        while True:
            j = skip_ws(text, j)
            if j >= n:
                break
            if text.startswith(syn.call_close, j):
                args.close()
                return j + len(syn.call_close)
            pm = syn.param_open.match(text, j)
            if pm is None:
                if _incomplete(text, j, syn.call_close, syn.param_open_lit):
                    break
                j += 1  # stray text inside a call: skip it
                continue
            key = pm.group(1).strip()
            param_close = syn.param_close.replace("{name}", key)
            close = text.find(param_close, pm.end())
            if close == -1:
                break
            flag = pm.group(2) if pm.re.groups >= 2 else None
            args.add(key, self.value(name, key, text[pm.end() : close], flag))
            j = close + len(param_close)
        if final:
            args.close()
            return n
        return None


@dataclass(frozen=True)
class QwenXmlParser(XmlToolParser):
    name: str = "qwen_xml"
    starts = ("<tool_call>",)
    syntax = XmlSyntax(
        "</tool_call>",
        re.compile(r"<function=([^>\n]+)>"),
        "<function=",
        "</function>",
        re.compile(r"<parameter=([^>\n]+)>"),
        "<parameter=",
        "</parameter>",
    )


@dataclass(frozen=True)
class MinimaxM2Parser(XmlToolParser):
    name: str = "minimax_m2"
    starts = ("<minimax:tool_call>",)
    syntax = XmlSyntax(
        "</minimax:tool_call>",
        re.compile(r'<invoke name="([^"]+)">'),
        "<invoke name=",
        "</invoke>",
        re.compile(r'<parameter name="([^"]+)">'),
        "<parameter name=",
        "</parameter>",
    )


def _dsml(block: str, t: str = "｜DSML｜") -> XmlSyntax:
    return XmlSyntax(
        f"</{t}{block}>",
        re.compile(f'<{t}invoke name="([^"]+)">'),
        f"<{t}invoke name=",
        f"</{t}invoke>",
        re.compile(f'<{t}parameter name="([^"]+)"(?: string="(true|false)")?>'),
        f"<{t}parameter name=",
        f"</{t}parameter>",
        trailer=("<｜end▁of▁sentence｜>",),
    )


@dataclass(frozen=True)
class DsmlParser(XmlToolParser):
    name: str = "deepseek32"
    starts = ("<｜DSML｜function_calls>",)
    syntax = _dsml("function_calls")


@dataclass(frozen=True)
class DsmlV4Parser(XmlToolParser):
    name: str = "deepseek_v4"
    starts = ("<｜DSML｜tool_calls>",)
    syntax = _dsml("tool_calls")


@dataclass(frozen=True)
class Step3Parser(XmlToolParser):
    name: str = "step3"
    starts = ("<｜tool_calls_begin｜>",)
    syntax = XmlSyntax(
        "<｜tool_calls_end｜>",
        re.compile(r'<steptml:invoke name="([^"]+)">'),
        "<steptml:invoke name=",
        "</steptml:invoke>",
        re.compile(r'<steptml:parameter name="([^"]+)">'),
        "<steptml:parameter name=",
        "</steptml:parameter>",
        skip=("<｜tool_call_begin｜>function<｜tool_sep｜>", "<｜tool_call_end｜>"),
    )


@dataclass(frozen=True)
class DsmlV41Parser(XmlToolParser):
    """DeepSeek-V4.1: DSML with a space after the DSML token (``<｜DSML｜ calls>``)."""

    name: str = "deepseek_v41"
    starts = ("<｜DSML｜ calls>",)
    syntax = _dsml("calls", "｜DSML｜ ")


_MM = "]<]minimax[>["


@dataclass(frozen=True)
class MinimaxM3Parser(XmlToolParser):
    """``]<]minimax[>[<tool_call>``, ``]<]minimax[>[<invoke name="f">``, then each
    parameter as ``]<]minimax[>[<KEY>value]<]minimax[>[</KEY>``."""

    name: str = "minimax_m3"
    starts = (f"{_MM}<tool_call>",)
    syntax = XmlSyntax(
        f"{_MM}</tool_call>",
        re.compile(re.escape(_MM) + r'<invoke name="([^"]+)">'),
        f"{_MM}<invoke name=",
        f"{_MM}</invoke>",
        re.compile(re.escape(_MM) + r"<([^/<>\s][^<>]*)>"),
        f"{_MM}<",
        f"{_MM}</{{name}}>",
    )
