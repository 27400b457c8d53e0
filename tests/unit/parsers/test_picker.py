"""Which parsers a model gets: every family's public model ids (org prefixes and all),
and tokenizer directories whose chat template declares the markers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smg.parsers import pick_parsers
from smg.parsers.reasoning import REASONING_PARSERS
from smg.parsers.tools import TOOL_PARSERS

# (public model id, reasoning parser, tool parser)
MODEL_IDS = [
    ("openai/gpt-oss-20b", "harmony", "gpt_oss"),
    ("openai/gpt-oss-120b", "harmony", "gpt_oss"),
    ("Qwen/Qwen2.5-7B-Instruct", None, "qwen"),
    ("Qwen/Qwen2.5-72B-Instruct", None, "qwen"),
    ("Qwen/QwQ-32B", "qwen3", "qwen"),
    ("Qwen/Qwen3-8B", "qwen3", "qwen"),
    ("Qwen/Qwen3-30B-A3B", "qwen3", "qwen"),
    ("Qwen/Qwen3-4B-Instruct-2507", "qwen3", "qwen"),
    ("Qwen/Qwen3-235B-A22B-Thinking-2507", "qwen3_thinking", "qwen"),
    ("Qwen/Qwen3-Coder-30B-A3B-Instruct", None, "qwen_xml"),
    ("Qwen/Qwen3-Coder-480B-A35B-Instruct", None, "qwen_xml"),
    ("Qwen/Qwen3.5-35B-A3B", "qwen3", "qwen_xml"),
    ("Qwen/Qwen3.6-35B-A3B", "qwen3", "qwen_xml"),
    ("deepseek-ai/DeepSeek-R1", "deepseek_r1", "deepseek"),
    ("deepseek-ai/DeepSeek-R1-0528", "deepseek_r1", "deepseek"),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "deepseek_r1", "deepseek"),
    ("deepseek-ai/DeepSeek-V3", None, "deepseek"),
    ("deepseek-ai/DeepSeek-V3-0324", None, "deepseek"),
    ("deepseek-ai/DeepSeek-V3.1", "deepseek_v31", "deepseek31"),
    ("deepseek-ai/DeepSeek-V3.1-Terminus", "deepseek_v31", "deepseek31"),
    ("deepseek-ai/DeepSeek-V3.2-Exp", "deepseek_v31", "deepseek31"),
    ("deepseek-ai/DeepSeek-V3.2", "deepseek_v31", "deepseek32"),
    ("deepseek-ai/DeepSeek-V4", "deepseek_v4", "deepseek_v4"),
    ("deepseek-ai/DeepSeek-V4.1-Flash", "deepseek_v41", "deepseek_v41"),
    ("meta-llama/Llama-3.1-8B-Instruct", None, "llama3"),
    ("meta-llama/Meta-Llama-3.1-70B-Instruct", None, "llama3"),
    ("meta-llama/Llama-3.2-3B-Instruct", None, "llama3"),
    ("meta-llama/Llama-3.3-70B-Instruct", None, "llama3"),
    ("meta-llama/Llama-4-Scout-17B-16E-Instruct", None, "pythonic"),
    ("meta-llama/Llama-4-Maverick-17B-128E-Instruct", None, "pythonic"),
    ("NousResearch/Hermes-3-Llama-3.1-8B", None, "qwen"),
    ("NousResearch/Hermes-4-14B", None, "qwen"),
    ("mistralai/Mistral-7B-Instruct-v0.3", None, "mistral"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", None, "mistral"),
    ("mistralai/Mistral-Small-3.2-24B-Instruct-2506", None, "mistral"),
    ("mistralai/Ministral-3-8B-Instruct-2512-BF16", None, "mistral"),
    ("mistralai/Devstral-Small-2507", None, "mistral"),
    ("mistralai/Magistral-Small-2509", "mistral_v13", "mistral"),
    ("moonshotai/Kimi-K2-Instruct", "kimi", "kimik2"),
    ("moonshotai/Kimi-K2-Thinking", "kimi_thinking", "kimik2"),
    ("moonshotai/Kimi-K2.5", "kimi_k25", "kimik2"),
    ("moonshotai/Kimi-K3", "kimi_k3", "kimi_k3"),
    ("zai-org/GLM-4.5", "glm45", "glm45_moe"),
    ("zai-org/GLM-4.5-Air", "glm45", "glm45_moe"),
    ("zai-org/GLM-4.6", "glm45", "glm45_moe"),
    ("zai-org/GLM-4.7", "glm45", "glm47_moe"),
    ("zai-org/GLM-5", "glm45", "glm47_moe"),
    ("MiniMaxAI/MiniMax-M1-80k", "minimax", "minimax_m2"),
    ("MiniMaxAI/MiniMax-M2", "minimax", "minimax_m2"),
    ("MiniMaxAI/MiniMax-M2.5", "minimax", "minimax_m2"),
    ("MiniMaxAI/MiniMax-M3", "minimax_m3", "minimax_m3"),
    ("MiniMaxAI/MiniMax-Text-01", None, "minimax_m2"),  # no thinking: no parser that starts in reasoning
    ("stepfun-ai/step3", "step3", "step3"),
    ("stepfun-ai/Step-3.5-Flash", "step3", "step3"),
    ("CohereLabs/c4ai-command-r-plus-08-2024", None, "cohere"),
    ("CohereLabs/command-a-reasoning-08-2025", "cohere_cmd", "cohere"),
    ("ByteDance-Seed/Seed-OSS-36B-Instruct", "seed_oss", "seed_oss"),
    ("google/gemma-3-27b-it", None, "json"),
    ("google/gemma-4-E4B-it", "gemma4", "gemma4"),
    ("google/functiongemma-270m-it", None, "function_gemma"),
    ("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", "nano_v3", "qwen_xml"),
    ("nvidia/Llama-3_3-Nemotron-Super-49B-v1_5", "nano_v3", "llama_nemotron"),
    ("nvidia/Llama-3.1-Nemotron-Nano-8B-v1", "nano_v3", "llama_nemotron"),
    ("thinkingmachines/Inkling", "inkling", "inkling"),
    ("sbintuitions/sarashina2.2-3b-instruct", None, "sarashina"),
    ("Salesforce/Llama-xLAM-2-8b-fc-r", None, "xlam"),
    ("LiquidAI/LFM2.5-1.2B-Instruct", "lfm2.5", "lfm2.5"),
    ("tencent/Hy4-preview", "hy_v4", "hy_v4"),
    ("IFM/K2-Horizon-36B", "k2_horizon", "k2_horizon"),
    ("inclusionAI/Ling-3.0-flash", "ling", "ling"),
    ("IQuestLab/IQuest-Q1", "iquest", "iquest"),
    ("dots-studio/dots3-note-prev", "dots3", "dots3"),
    ("allenai/Olmo-3-7B-Instruct", None, "olmo3"),
    ("openbmb/MiniCPM5-2B", "minicpm5", "minicpm5"),
    ("some-lab/unknown-model", None, None),
]


@pytest.mark.parametrize(("model", "reasoning", "tool"), MODEL_IDS, ids=[m[0] for m in MODEL_IDS])
def test_every_family_public_id(model: str, reasoning: str | None, tool: str | None) -> None:
    pick = pick_parsers(model)
    assert (pick.reasoning, pick.tool) == (reasoning, tool), pick.why
    assert pick.reasoning is None or pick.reasoning in REASONING_PARSERS
    assert pick.tool is None or pick.tool in TOOL_PARSERS
    assert set(pick.why) == {"reasoning", "tool"}


@pytest.mark.parametrize(("model", "reasoning", "tool"), MODEL_IDS[:-1], ids=[m[0] for m in MODEL_IDS[:-1]])
def test_bare_and_prefixed_ids_agree(model: str, reasoning: str | None, tool: str | None) -> None:
    bare = pick_parsers(model.split("/", 1)[1])
    assert (bare.reasoning, bare.tool) == (reasoning, tool)


# What each family's published chat template writes for an assistant turn's tool calls
# (and thinking), reduced to the lines that render them.
TEMPLATES = {
    "qwen2.5": ("{%- for tool_call in message.tool_calls %}{{- '\\n<tool_call>\\n{\"name\": \"' }}{{- tool_call.name }}"
                "{{- '\", \"arguments\": ' }}{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}{%- endfor %}", None, "qwen"),
    "qwen3": ("{%- if reasoning_content %}{{- '<think>\\n' + reasoning_content + '\\n</think>\\n\\n' }}{%- endif %}"
              "{{- '<tool_call>\\n{\"name\": \"' }}{{- tool_call.name }}{{- '}\\n</tool_call>' }}", "base", "qwen"),
    "qwen3-coder": ("{{- '\\n<tool_call>\\n<function=' + tool_call.name + '>\\n' }}{%- for args_name, args_value in tool_call.arguments|items %}"
                    "{{- '<parameter=' + args_name + '>\\n' }}{{- args_value }}{{- '\\n</parameter>\\n' }}{%- endfor %}{{- '</function>\\n</tool_call>' }}", None, "qwen_xml"),
    "deepseek-v3": ("{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json'"
                    " + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}", None, "deepseek"),
    "deepseek-r1-0528": ("{{'<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json'"
                         " + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}{% if add_generation_prompt %}{{'<｜Assistant｜><think>\\n'}}{% endif %}",
                         "base", "deepseek"),
    "deepseek-v3.1": ("{{'<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>'+ tool['function']['name'] + '<｜tool▁sep｜>' + tool['function']['arguments'] + '<｜tool▁call▁end｜>'}}"
                      "{%- if thinking %}{{'<think>'}}{%- else %}{{'</think>'}}{%- endif %}", "base", "deepseek31"),
    "glm-4.5": ("{{ '<tool_call>' + tc.name }}\n{% for k, v in _args.items() %}<arg_key>{{ k }}</arg_key>\n<arg_value>{{ v }}</arg_value>\n{% endfor %}</tool_call>"
                "{{ '<think></think>' if not enable_thinking }}", "base", "glm45_moe"),
    "glm-4.7": ("{{ '<tool_call>' + tc.name }}{% for k, v in _args.items() %}<arg_key>{{ k }}</arg_key><arg_value>{{ v }}</arg_value>{% endfor %}</tool_call>"
                "{{ '<think></think>' }}", "base", "glm47_moe"),
    "minimax-m2": ('{{- "<minimax:tool_call>\\n" }}{{- \'<invoke name="\' + tool_call.name + \'">\' }}{{- \'<parameter name="\' + k + \'">\' }}'
                   "{{- '<think>\\n' + reasoning_content + '\\n</think>' }}", "base", "minimax_m2"),
    "kimi-k2": ("{{'<|tool_calls_section_begin|>'}}{{'<|tool_call_begin|>' + tool_call['id'] + '<|tool_call_argument_begin|>' + args + '<|tool_call_end|>'}}", None, "kimik2"),
    "mistral": ("{{- '[TOOL_CALLS][' }}{{- tool_call.function|tojson }}{{- ']' + eos_token }}", None, "mistral"),
    "llama-3.1": ("{{- '<|python_tag|>' + tool_call.name + '.call(' }}{{- '{\"name\": \"' + tool_call.name + '\", ' }}", None, "llama3"),
    "llama-4": ("{{- '<|python_start|>' }}{{- '[' + tool_call.name + '(' }}{{- '<|python_end|>' }}", None, "pythonic"),
    "gpt-oss": ("{{- '<|start|>assistant to=' + 'functions.' + tool_call.name + '<|channel|>commentary json<|message|>' }}"
                "{{- '<|start|>assistant<|channel|>analysis<|message|>' + message.thinking + '<|end|>' }}", "harmony", "gpt_oss"),
    "command-r": ("{{ '<|START_ACTION|>' }}{{ tool_call | tojson }}{{ '<|END_ACTION|>' }}{{ '<|START_THINKING|>' }}", "cohere_cmd", "cohere"),
    "seed-oss": ("{{- '<seed:tool_call>\\n<function=' + tool_call.name + '>' }}{{- '<seed:think>' + reasoning + '</seed:think>' }}", "seed_oss", "seed_oss"),
    "no-markers": ("{% for m in messages %}{{ m.role }}: {{ m.content }}\\n{% endfor %}", None, None),
}


@pytest.mark.parametrize("family", sorted(TEMPLATES))
def test_the_template_declares_the_parsers(family: str, tmp_path: Path) -> None:
    template, reasoning, tool = TEMPLATES[family]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}), encoding="utf-8")
    pick = pick_parsers("my-org/private-finetune", tmp_path)
    assert (pick.reasoning, pick.tool) == (reasoning, tool), pick.why
    assert "template" in pick.why["tool"]


# A <think> template with the family's own id: the id's <think> parser (same markers).
REAL_IDS = {
    "qwen3": ("Qwen/Qwen3-8B", "qwen3"),
    "deepseek-r1-0528": ("deepseek-ai/DeepSeek-R1-0528", "deepseek_r1"),
    "deepseek-v3.1": ("deepseek-ai/DeepSeek-V3.1", "deepseek_v31"),
    "glm-4.5": ("zai-org/GLM-4.5", "glm45"),
    "glm-4.7": ("zai-org/GLM-4.7", "glm45"),
    "minimax-m2": ("MiniMaxAI/MiniMax-M2", "minimax"),
    "gpt-oss": ("openai/gpt-oss-20b", "harmony"),
}


@pytest.mark.parametrize("family", sorted(REAL_IDS))
def test_a_think_template_with_its_id(family: str, tmp_path: Path) -> None:
    template, _, tool = TEMPLATES[family]
    model, reasoning = REAL_IDS[family]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}), encoding="utf-8")
    pick = pick_parsers(model, tmp_path)
    assert (pick.reasoning, pick.tool) == (reasoning, tool), pick.why


def test_the_template_wins_over_the_id(tmp_path: Path) -> None:
    # A Qwen3-Coder fine-tune named like a Qwen2.5 model: the template's XML calls decide.
    (tmp_path / "chat_template.jinja").write_text(TEMPLATES["qwen3-coder"][0], encoding="utf-8")
    assert pick_parsers("Qwen/Qwen2.5-7B-Instruct", tmp_path).tool == "qwen_xml"


def test_a_template_without_thinking_gets_no_reasoning_parser(tmp_path: Path) -> None:
    # A tool-only MiniMax/Step model: a parser that starts in reasoning would swallow it.
    tpl = '{{- "<minimax:tool_call>\\n" }}{{- \'<invoke name="\' + tool_call.name + \'">\' }}'
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": [{"name": "default", "template": tpl}]}), encoding="utf-8")
    pick = pick_parsers("MiniMaxAI/MiniMax-M2", tmp_path)
    assert (pick.reasoning, pick.tool) == (None, "minimax_m2")
    assert "no thinking markers" in pick.why["reasoning"]


def test_markerless_template_falls_back_to_the_id(tmp_path: Path) -> None:
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": TEMPLATES["no-markers"][0]}), encoding="utf-8")
    pick = pick_parsers("meta-llama/Llama-3.3-70B-Instruct", tmp_path)
    assert pick.tool == "llama3" and "no tool-call markers" in pick.why["tool"]


def test_config_model_type_when_no_id(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt_oss"}), encoding="utf-8")
    assert (pick_parsers(None, tmp_path).reasoning, pick_parsers(None, tmp_path).tool) == ("harmony", "gpt_oss")
