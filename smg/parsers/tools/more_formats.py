"""Tool-call formats of families added to the Rust gateway after the first parsers.

``seed_oss`` (ByteDance Seed-OSS): ``<seed:tool_call><function=f><parameter=k>v
</parameter></function></seed:tool_call>``. ``llama_nemotron`` (Llama-Nemotron):
``<TOOLCALL>[{"name": ..., "arguments": {...}}]</TOOLCALL>``. ``lfm2.5`` (Liquid LFM2 /
LFM2.5): a pythonic list between ``<|tool_call_start|>`` and ``<|tool_call_end|>``.
``dots3``: MiniMax-M2 ``<invoke>`` calls inside ``<dots_function_call>``. ``minicpm5``: ``<function name="f"><param name="k">v</param></function>``. ``olmo3``:
pythonic calls in ``<function_calls>``. ``passthrough``: no tool calls are read; the output is content as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import ClassVar

from smg.parsers.core import Snapshot, all_content
from smg.parsers.tools.base import MarkerToolParser, TextEnd
from smg.parsers.tools.json_formats import objects_section
from smg.parsers.tools.pythonic import PythonicParser
from smg.parsers.tools.xml_formats import MinimaxM2Parser, QwenXmlParser, XmlSyntax, XmlToolParser

__all__ = [
    "Dots3Parser",
    "Lfm2Parser",
    "MiniCpm5Parser",
    "NemotronToolCallParser",
    "Olmo3Parser",
    "PassthroughToolParser",
    "SeedOssParser",
]


@dataclass(frozen=True)
class SeedOssParser(XmlToolParser):
    name: str = "seed_oss"
    starts = ("<seed:tool_call>",)
    syntax = replace(QwenXmlParser.syntax, section_end="</seed:tool_call>")


@dataclass(frozen=True)
class NemotronToolCallParser(MarkerToolParser):
    name: str = "llama_nemotron"
    starts = ("<TOOLCALL>",)
    END: ClassVar[str] = "</TOOLCALL>"

    def region(self, text, i, marker, b, final):
        return objects_section(text, i + len(marker), self.END, b, final)


@dataclass(frozen=True)
class Lfm2Parser(PythonicParser):
    name: str = "lfm2.5"
    WRAP_OPEN: ClassVar[str] = "<|tool_call_start|>"
    WRAP_CLOSE: ClassVar[str] = "<|tool_call_end|>"


@dataclass(frozen=True)
class PassthroughToolParser(MarkerToolParser):
    name: str = "passthrough"

    def fast(self, chunk: str, state: object) -> tuple[str, str] | None:
        return chunk, ""

    def parse(self, text: str, final: bool, state: object = None) -> Snapshot:
        return all_content(text)


@dataclass(frozen=True)
class Dots3Parser(XmlToolParser):
    """dots3: MiniMax-M2-style ``<invoke name="f"><parameter name="k">v</parameter>
    </invoke>`` calls inside ``<dots_function_call>`` … ``</dots_function_call>``."""

    name: str = "dots3"
    starts = ("<dots_function_call>",)
    syntax = replace(MinimaxM2Parser.syntax, section_end="</dots_function_call>")


@dataclass(frozen=True)
class MiniCpm5Parser(XmlToolParser):
    """MiniCPM 5: ``<function name="f"><param name="k">v</param></function>`` per call,
    with no section around the calls."""

    name: str = "minicpm5"
    starts = ('<function name="',)
    syntax = XmlSyntax(
        "\\0",  # no section end: each call is its own region
        re.compile(r'<function name="([^"]+)">'),
        '<function name="',
        "</function>",
        re.compile(r'<param name="([^"]+)">'),
        "<param name=",
        "</param>",
    )

    def region(self, text, i, marker, b, final):
        m = self.syntax.call_open.match(text, i)
        if m is None:
            if not final and ">" not in text[i:] and "\n" not in text[i:]:
                return None  # the tag is still arriving
            return TextEnd(i + len(marker))
        return self._call(text, m, b, final)


@dataclass(frozen=True)
class Olmo3Parser(MarkerToolParser):
    """Olmo 3: pythonic calls inside ``<function_calls>`` … ``</function_calls>``, as a
    list ``[f(a=1), g()]`` or one call per line without the brackets."""

    name: str = "olmo3"
    starts = ("<function_calls>",)
    END: ClassVar[str] = "</function_calls>"

    def region(self, text, i, marker, b, final):
        n = len(text)
        stop = text.find(self.END, i + len(marker))
        if stop == -1 and not final:
            return None  # the calls are read once the block closes
        body = text[i + len(marker) : n if stop == -1 else stop].strip()
        if not body.startswith("["):
            body = "[" + ", ".join(line.strip() for line in body.splitlines() if line.strip()) + "]"
        ncalls = len(b.calls)
        PythonicParser()._calls(body, 1, b, stop == -1)
        if stop == -1:
            del b.calls[ncalls:]  # cut off before the block closed
            return n
        if len(b.calls) == ncalls:
            return TextEnd(stop + len(self.END))
        return stop + len(self.END)
