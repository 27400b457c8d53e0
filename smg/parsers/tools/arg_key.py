"""Tool calls written as a name then ``<arg_key>k</arg_key><arg_value>v</arg_value>`` pairs.

GLM-4.5/4.6 (``<tool_call>name\\n<arg_key>...``, newline-separated) and GLM-4.7/5
(whitespace-separated) write ``<tool_call>`` … ``</tool_call>`` per call, and so do Ling
(``ling``) and IQuest (``iquest``, in ``<iquest_tool_call>``). Hunyuan 4
(``hy_v4``) wraps its calls in ``<tool_calls:opensource>`` and spells every tag with a
``:opensource`` suffix; K2-Horizon spells them ``<ifm|tool_call>`` and so on. Values are
typed with the tool's JSON schema when the request gave tools, else kept as strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from smg.parsers.tools.base import ArgsBuilder, MarkerToolParser, TextEnd, skip_ws, typed_value

__all__ = ["ArgKeyParser", "Glm45Parser", "Glm47Parser", "HyV4Parser", "IQuestParser", "K2HorizonParser"]

_NAME = re.compile(r"[\w.\-:/]+")


def _partial(text: str, j: int, *lits: str) -> bool:
    rest = text[j:]
    return any(lit.startswith(rest) or rest.startswith(lit) for lit in lits)


@dataclass(frozen=True)
class ArgKeyParser(MarkerToolParser):
    """``CALL_OPEN name KEY_OPEN k KEY_CLOSE VALUE_OPEN v VALUE_CLOSE ... CALL_CLOSE``,
    optionally inside ``SECTION_OPEN`` … ``SECTION_CLOSE``."""

    CALL_OPEN: ClassVar[str] = "<tool_call>"
    CALL_CLOSE: ClassVar[str] = "</tool_call>"
    KEY_OPEN: ClassVar[str] = "<arg_key>"
    KEY_CLOSE: ClassVar[str] = "</arg_key>"
    VALUE_OPEN: ClassVar[str] = "<arg_value>"
    VALUE_CLOSE: ClassVar[str] = "</arg_value>"
    SECTION: ClassVar[tuple[str, str] | None] = None

    def region(self, text, i, marker, b, final):
        if self.SECTION is None or marker != self.SECTION[0]:
            return self._call(text, i, b, final)
        opened, closed = self.SECTION
        n = len(text)
        ncalls = len(b.calls)
        j = i + len(opened)
        while True:
            j = skip_ws(text, j)
            if j >= n:
                return n if final else None
            if text.startswith(closed, j):
                end = j + len(closed)
                return end if len(b.calls) > ncalls else TextEnd(end)
            if text.startswith(self.CALL_OPEN, j):
                end = self._call(text, j, b, final)
                if end is None or isinstance(end, TextEnd):
                    return end if end is None else TextEnd(i + len(opened))
                j = end
                continue
            if _partial(text, j, closed, self.CALL_OPEN):
                return n if final else None
            return j if len(b.calls) > ncalls else TextEnd(i + len(opened))

    def _call(self, text, i, b, final):
        n = len(text)
        j = i + len(self.CALL_OPEN)
        k = j
        while k < n and text[k] not in "\n<":
            k += 1
        if k >= n and not final:
            return None
        name = text[j:k].strip()
        if k >= n and (not name or _NAME.fullmatch(name)):
            return n  # cut off after the name
        if not _NAME.fullmatch(name):  # no tool name: the marker was written in prose
            if not name and text.startswith(self.CALL_CLOSE, k):
                return TextEnd(k + len(self.CALL_CLOSE))
            if not name and not final and self.CALL_CLOSE.startswith(text[k:]):
                return None
            return TextEnd(i + len(self.CALL_OPEN))
        args = ArgsBuilder(b.call(name))
        j = k
        while True:
            j = skip_ws(text, j)
            if text.startswith(self.CALL_CLOSE, j):
                args.close()
                return j + len(self.CALL_CLOSE)
            if text.startswith(self.KEY_OPEN, j):
                kc = text.find(self.KEY_CLOSE, j)
                vo = text.find(self.VALUE_OPEN, kc) if kc != -1 else -1
                vc = text.find(self.VALUE_CLOSE, vo) if vo != -1 else -1
                if vc != -1:
                    key = text[j + len(self.KEY_OPEN) : kc].strip()
                    raw = text[vo + len(self.VALUE_OPEN) : vc]
                    args.add(key, typed_value(raw, self.schema_type(name, key)))
                    j = vc + len(self.VALUE_CLOSE)
                    continue
            elif j < n and not _partial(text, j, self.CALL_CLOSE, self.KEY_OPEN):
                j += 1
                continue
            if final:
                args.close()
                return n
            return None


@dataclass(frozen=True)
class Glm45Parser(ArgKeyParser):
    name: str = "glm45_moe"
    starts = ("<tool_call>",)


@dataclass(frozen=True)
class Glm47Parser(Glm45Parser):
    name: str = "glm47_moe"


def _spelled(fmt: str) -> dict[str, str]:
    return {
        "CALL_OPEN": fmt.format("tool_call"), "CALL_CLOSE": fmt.format("/tool_call"),
        "KEY_OPEN": fmt.format("arg_key"), "KEY_CLOSE": fmt.format("/arg_key"),
        "VALUE_OPEN": fmt.format("arg_value"), "VALUE_CLOSE": fmt.format("/arg_value"),
    }


_HY = _spelled("<{}:opensource>")


@dataclass(frozen=True)
class HyV4Parser(ArgKeyParser):
    """Hunyuan 4: ``<tool_calls:opensource><tool_call:opensource>name<arg_key:opensource>…``."""

    name: str = "hy_v4"
    SECTION = ("<tool_calls:opensource>", "</tool_calls:opensource>")
    starts = (SECTION[0], _HY["CALL_OPEN"])
    CALL_OPEN, CALL_CLOSE = _HY["CALL_OPEN"], _HY["CALL_CLOSE"]
    KEY_OPEN, KEY_CLOSE = _HY["KEY_OPEN"], _HY["KEY_CLOSE"]
    VALUE_OPEN, VALUE_CLOSE = _HY["VALUE_OPEN"], _HY["VALUE_CLOSE"]


_IFM = {k: v.replace("</", "</ifm|").replace("<ifm|/", "</ifm|") for k, v in _spelled("<ifm|{}>").items()}


@dataclass(frozen=True)
class K2HorizonParser(ArgKeyParser):
    """K2-Horizon (IFM): ``<ifm|tool_calls><ifm|tool_call>name<ifm|arg_key>…``."""

    name: str = "k2_horizon"
    SECTION = ("<ifm|tool_calls>", "</ifm|tool_calls>")
    starts = (SECTION[0], _IFM["CALL_OPEN"])
    CALL_OPEN, CALL_CLOSE = _IFM["CALL_OPEN"], _IFM["CALL_CLOSE"]
    KEY_OPEN, KEY_CLOSE = _IFM["KEY_OPEN"], _IFM["KEY_CLOSE"]
    VALUE_OPEN, VALUE_CLOSE = _IFM["VALUE_OPEN"], _IFM["VALUE_CLOSE"]


@dataclass(frozen=True)
class IQuestParser(ArgKeyParser):
    name: str = "iquest"
    starts = ("<iquest_tool_call>",)
    CALL_OPEN = "<iquest_tool_call>"
    CALL_CLOSE = "</iquest_tool_call>"
