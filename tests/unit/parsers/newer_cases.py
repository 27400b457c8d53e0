"""Families the Rust gateway gained after the first parsers, in their real output.

Tool cases are (parser, output, content, calls as (name, arguments object)); reasoning
cases (parser, output, reasoning, content). The legacy-parser outputs (gemma4, hy_v4,
minimax_m3, deepseek_v41, nemotron and the reasoning ones) were read the same way by
the Rust gateway 1.13's own parsers (its /parse endpoints); seed_oss, k2_horizon,
llama_nemotron, lfm2.5, function_gemma, minicpm5, olmo3, qwen3_tagged, dots3, iquest, ling, mistral_v13 and
hy4 the same way by its Symphony tables (a chat completion through ``smg launch
--parser symphony`` over a scripted ``smg worker``); passthrough is by definition.
"""

from __future__ import annotations

from .cases import W

_D = "｜DSML｜ "
_MM = "]<]minimax[>["
Q = {"q": "rust"}

NEWER_TOOL_CASES = [
    ("gemma4", 'Hi<|tool_call>call:get_weather{city:<|"|>北京<|"|>,unit:<|"|>celsius<|"|>}<tool_call|>',
     "Hi", [("get_weather", W)]),
    ("gemma4", '<|tool_call>call:search{q:<|"|>a, b} <tool_call|><|"|>}<tool_call|><|tool_call>call:ping{}<tool_call|>',
     "", [("search", {"q": "a, b} <tool_call|>"}), ("ping", {})]),
    ("gemma4", '<|tool_call>call:f{o:{a:[1,<|"|>x<|"|>],b:true},n:null}<tool_call|>', "", [("f", {"o": {"a": [1, "x"], "b": True}, "n": None})]),
    ("function_gemma", "<start_function_call>call:get_weather{city:<escape>北京<escape>,unit:<escape>celsius<escape>}<end_function_call>",
     "", [("get_weather", W)]),
    ("hy_v4", "<tool_calls:opensource><tool_call:opensource>get_weather<arg_key:opensource>city</arg_key:opensource><arg_value:opensource>北京"
     "</arg_value:opensource><arg_key:opensource>unit</arg_key:opensource><arg_value:opensource>celsius</arg_value:opensource></tool_call:opensource>"
     "<tool_call:opensource>search<arg_key:opensource>q</arg_key:opensource><arg_value:opensource>rust</arg_value:opensource></tool_call:opensource>"
     "</tool_calls:opensource>", "", [("get_weather", W), ("search", Q)]),
    ("k2_horizon", "Ok.<ifm|tool_calls><ifm|tool_call>search<ifm|arg_key>q</ifm|arg_key><ifm|arg_value>rust</ifm|arg_value></ifm|tool_call></ifm|tool_calls>",
     "Ok.", [("search", Q)]),
    ("minimax_m3", f'{_MM}<tool_call>\n{_MM}<invoke name="get_weather">\n{_MM}<city>北京{_MM}</city>\n{_MM}<unit>celsius{_MM}</unit>\n{_MM}</invoke>\n{_MM}</tool_call>',
     "", [("get_weather", W)]),
    ("deepseek_v41", f'Hi<{_D}calls>\n<{_D}invoke name="get_weather">\n<{_D}parameter name="city" string="true">北京</{_D}parameter>\n'
     f'<{_D}parameter name="unit" string="true">celsius</{_D}parameter>\n</{_D}invoke>\n<{_D}invoke name="n">\n'
     f'<{_D}parameter name="k" string="false">{{"a": [1, 2]}}</{_D}parameter>\n</{_D}invoke>\n</{_D}calls>',
     "Hi", [("get_weather", W), ("n", {"k": {"a": [1, 2]}})]),
    ("nemotron", "<tool_call>\n<function=search>\n<parameter=q>\nrust\n</parameter>\n</function>\n</tool_call>", "", [("search", Q)]),
    ("seed_oss", "Let me check.<seed:tool_call>\n<function=get_weather>\n<parameter=city>北京</parameter>\n<parameter=unit>celsius</parameter>\n</function>\n</seed:tool_call>",
     "Let me check.", [("get_weather", W)]),
    ("llama_nemotron", '<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "北京", "unit": "celsius"}}, {"name": "search", "arguments": {"q": "rust"}}]</TOOLCALL>',
     "", [("get_weather", W), ("search", Q)]),
    ("lfm2.5", 'Sure.<|tool_call_start|>[get_weather(city="北京", unit="celsius")]<|tool_call_end|>', "Sure.", [("get_weather", W)]),
    ("minicpm5", 'Checking.<function name="get_weather"><param name="city">北京</param><param name="unit">celsius</param></function>',
     "Checking.", [("get_weather", W)]),
    ("olmo3", 'Checking.<function_calls>get_weather(city="北京", unit="celsius")\nsearch(q="rust")</function_calls>', "Checking.",
     [("get_weather", W), ("search", Q)]),
    ("olmo3", '<function_calls>[search(q="rust")]</function_calls>', "", [("search", Q)]),
    ("qwen3_tagged", "<tool_call>\n<function=search>\n<parameter=q>\nrust\n</parameter>\n</function>\n</tool_call>", "", [("search", Q)]),
    ("dots3", 'Checking.<dots_function_call>\n<invoke name="search">\n<parameter name="q">rust</parameter>\n</invoke>\n</dots_function_call>',
     "Checking.", [("search", Q)]),
    ("iquest", "Checking.<iquest_tool_call>search\n<arg_key>q</arg_key>\n<arg_value>rust</arg_value>\n</iquest_tool_call>", "Checking.", [("search", Q)]),
    ("ling", "Checking.<tool_call>search\n<arg_key>q</arg_key>\n<arg_value>rust</arg_value>\n</tool_call>", "Checking.", [("search", Q)]),
    ("passthrough", '<tool_call>\n{"name": "search", "arguments": {"q": "rust"}}\n</tool_call>',
     '<tool_call>\n{"name": "search", "arguments": {"q": "rust"}}\n</tool_call>', []),
]

NEWER_REASONING_CASES = [
    ("deepseek_v4", "<think>a</think>b", "a", "b"),
    ("deepseek_v41", "<think>计划</think>答案", "计划", "答案"),
    ("gemma4", "<|channel>thought\n想一想<channel|>答案", "想一想", "答案"),
    ("hy_v4", "<think:opensource>a</think:opensource>b", "a", "b"),
    ("minimax_m3", "<mm:think>a</mm:think>b", "a", "b"),
    ("seed_oss", "<seed:think>plan</seed:think>answer", "plan", "answer"),
    ("mistral_v13", "[THINK]plan[/THINK]answer", "plan", "answer"),
    ("k2_horizon", "<ifm|think>plan</ifm|think>answer", "plan", "answer"),
    ("passthrough", "<think>kept</think> as is", "", "<think>kept</think> as is"),
]
