"""Reasoning and tool-call parsers for model output, correct under any chunking.

Each format is one pure ``parse(text, final)`` function (see ``smg.parsers.core``);
streaming deltas come from diffing its snapshots, so the streamed result always equals
the complete one. ``smg.parsers.reasoning`` splits thinking from the answer;
``smg.parsers.tools`` extracts tool calls; ``smg.parsers.output`` chains both for one
choice of a response. ``pick_parsers(model_id, tokenizer_dir)`` says which parsers a
model gets and why (its chat template's markers first, then its id).
"""

from smg.parsers.core import Delta, ParseResult, StreamingParser, ToolCall, ToolCallDelta
from smg.parsers.picker import ParserPick, pick_parsers
from smg.parsers.reasoning import get_reasoning_parser, reasoning_parser_for_model
from smg.parsers.tools import get_tool_parser, tool_parser_for_model

__all__ = [
    "Delta",
    "ParseResult",
    "ParserPick",
    "StreamingParser",
    "ToolCall",
    "ToolCallDelta",
    "get_reasoning_parser",
    "get_tool_parser",
    "pick_parsers",
    "reasoning_parser_for_model",
    "tool_parser_for_model",
]
