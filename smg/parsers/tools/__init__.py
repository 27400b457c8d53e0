"""Tool-call parsers by name, and the model-name mapping that picks one."""

from __future__ import annotations

from smg.parsers.model_ids import TOOL_ID_PATTERNS, match_id
from smg.parsers.tools.arg_key import Glm45Parser, Glm47Parser, HyV4Parser, IQuestParser, K2HorizonParser
from smg.parsers.tools.base import MarkerToolParser
from smg.parsers.tools.channels import InklingToolParser, KimiK3ToolParser
from smg.parsers.tools.gemma import FunctionGemmaParser, Gemma4Parser
from smg.parsers.tools.harmony import HarmonyParser
from smg.parsers.tools.json_formats import (
    CohereParser,
    DeepSeekV3Parser,
    DeepSeekV31Parser,
    HermesParser,
    JsonParser,
    KimiK2Parser,
    Llama3Parser,
    MistralParser,
)
from smg.parsers.tools.more_formats import (
    Dots3Parser,
    Lfm2Parser,
    MiniCpm5Parser,     NemotronToolCallParser,
    Olmo3Parser,
    PassthroughToolParser,
    SeedOssParser,
)
from smg.parsers.tools.pythonic import PythonicParser
from smg.parsers.tools.sarashina import SarashinaParser
from smg.parsers.tools.xml_formats import (
    DsmlParser,
    DsmlV4Parser,
    DsmlV41Parser,
    MinimaxM2Parser,
    MinimaxM3Parser,
    QwenXmlParser,
    Step3Parser,
)

__all__ = ["TOOL_PARSERS", "UNVERIFIED_ALIASES", "MarkerToolParser", "get_tool_parser", "tool_parser_for_model"]

TOOL_PARSERS: dict[str, MarkerToolParser] = {}
for _cls, _aliases in (
    (PassthroughToolParser, ("plain",)),
    (JsonParser, ("xlam",)),
    # Qwen2.5/Qwen3 write Hermes <tool_call>{json}</tool_call>
    (HermesParser, ("hermes", "qwen2.5", "qwen3")),
    # Nemotron 3 (the Rust "nemotron" parser) and the "tagged" Qwen3 tables write
    # Qwen3-Coder XML calls
    (QwenXmlParser, ("qwen_coder", "qwen3_coder", "nemotron", "qwen3_tagged", "qwen3_tagged_direct")),
    (Llama3Parser, ("llama",)),
    (PythonicParser, ("llama4",)),
    (MistralParser, ("mistral_v13",)),
    (DeepSeekV3Parser, ("deepseekv3",)),
    (DeepSeekV31Parser, ("deepseekv31",)),
    (DsmlParser, ("deepseekv32",)),
    (DsmlV4Parser, ("deepseekv4",)),
    (DsmlV41Parser, ("deepseek_v4.1",)),
    (KimiK2Parser, ("kimi_k2",)),
    (Glm45Parser, ("glm45", "glm4", "ling")),
    (Glm47Parser, ("glm47", "glm")),
    (MinimaxM2Parser, ("minimax",)),
    (MinimaxM3Parser, ()),
    (Step3Parser, ()),
    (CohereParser, ()),
    (HarmonyParser, ("harmony", "gpt-oss")),
    (KimiK3ToolParser, ("kimik3",)),
    (InklingToolParser, ()),
    (SarashinaParser, ()),
    (Gemma4Parser, ()),
    (FunctionGemmaParser, ()),
    (HyV4Parser, ("hy4",)),
    (K2HorizonParser, ()),
    (SeedOssParser, ()),
    (NemotronToolCallParser, ()),
    (Lfm2Parser, ()),
    (IQuestParser, ()),
    (Dots3Parser, ()),
    (MiniCpm5Parser, ()),
    (Olmo3Parser, ()),
):
    _p = _cls()
    for _name in (_p.name, *_aliases):
        TOOL_PARSERS[_name] = _p

# Rust gateway (1.13) names smg could not confirm: "hf" has the Rust gateway read the
# parser the tokenizer config declares (its response_template); here it reads nothing.
UNVERIFIED_ALIASES: dict[str, str] = {"hf": "passthrough"}
for _name, _target in UNVERIFIED_ALIASES.items():
    TOOL_PARSERS[_name] = TOOL_PARSERS[_target]


def tool_parser_for_model(model: str) -> str | None:
    """The tool parser a model id names (``smg.parsers.model_ids``), or None."""
    return match_id(model, TOOL_ID_PATTERNS)[0]


def get_tool_parser(name: str) -> MarkerToolParser:
    try:
        return TOOL_PARSERS[name]
    except KeyError:
        raise ValueError(
            f"unknown tool-call parser {name!r}; known: {', '.join(sorted(TOOL_PARSERS))}"
        ) from None
