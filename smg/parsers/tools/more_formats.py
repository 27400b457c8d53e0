"""Tool-call formats of families added to the Rust gateway after the first parsers.

``seed_oss`` (ByteDance Seed-OSS): ``<seed:tool_call><function=f><parameter=k>v
</parameter></function></seed:tool_call>``. ``llama_nemotron`` (Llama-Nemotron):
``<TOOLCALL>[{"name": ..., "arguments": {...}}]</TOOLCALL>``. ``lfm2.5`` (Liquid LFM2 /
LFM2.5): a pythonic list between ``<|tool_call_start|>`` and ``<|tool_call_end|>``.
``iquest`` and ``dots3``: the Hermes layout (a ``{"name", "arguments"}`` object) inside
``<iquest_tool_call>``/``<dots_function_call>`` (the markers the Rust gateway's tables
name; the JSON payload is assumed). ``passthrough``: no tool calls are read; the output is content as written.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from smg.parsers.core import Snapshot, all_content
from smg.parsers.tools.base import MarkerToolParser
from smg.parsers.tools.json_formats import HermesParser, objects_section
from smg.parsers.tools.pythonic import PythonicParser
from smg.parsers.tools.xml_formats import QwenXmlParser, XmlToolParser

__all__ = ["Dots3Parser", "IQuestParser", "Lfm2Parser", "NemotronToolCallParser", "PassthroughToolParser", "SeedOssParser"]


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
class IQuestParser(HermesParser):
    name: str = "iquest"
    starts = ("<iquest_tool_call>",)
    END = "</iquest_tool_call>"


@dataclass(frozen=True)
class Dots3Parser(HermesParser):
    name: str = "dots3"
    starts = ("<dots_function_call>",)
    END = "</dots_function_call>"
