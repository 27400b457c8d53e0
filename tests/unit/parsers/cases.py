"""Model outputs in each family's real format, with what they must parse to.

Each case: (parser name, model output, expected content, expected reasoning,
expected calls as (name, arguments-as-python-object or None when truncated)).
"""

from __future__ import annotations

W = {"city": "北京", "unit": "celsius"}
NESTED = {"filter": {"tags": ["a", "b\"q\""], "range": [1, 2.5]}, "note": "say \"hi\"\n😀"}

DS_B, DS_E = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
DS_CB, DS_CE, DS_SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"

TOOL_CASES = [
    # hermes / qwen
    ("qwen", 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "北京", "unit": "celsius"}}\n</tool_call>',
     "Let me check.\n", "", [("get_weather", W)]),
    ("qwen", '<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\n<tool_call>\n{"name": "search", "arguments": {"filter": {"tags": ["a", "b\\"q\\""], "range": [1, 2.5]}, "note": "say \\"hi\\"\\n😀"}}\n</tool_call>',
     "", "", [("a", {}), ("search", NESTED)]),
    ("qwen", "No tools needed: 1 < 2 and <b>bold</b>.", "No tools needed: 1 < 2 and <b>bold</b>.", "", []),
    ("qwen", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par', "", "", [("get_weather", None)]),
    # json / llama3 / mistral / cohere
    ("json", '[{"name": "a", "arguments": {"x": 1}}, {"name": "b", "parameters": {"y": [1, {"z": null}]}}]',
     "", "", [("a", {"x": 1}), ("b", {"y": [1, {"z": None}]})]),
    ("json", "plain answer", "plain answer", "", []),
    ("llama3", '<|python_tag|>{"name": "get_weather", "parameters": {"city": "北京", "unit": "celsius"}}', "", "", [("get_weather", W)]),
    ("llama3", '{"name": "f", "parameters": {"q": "x;y"}}; {"name": "g", "parameters": {}}', "", "", [("f", {"q": "x;y"}), ("g", {})]),
    ("mistral", 'Sure. [TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "北京", "unit": "celsius"}}, {"name": "a", "arguments": {}}]',
     "Sure. ", "", [("get_weather", W), ("a", {})]),
    ("mistral", '[TOOL_CALLS]get_weather[ARGS]{"city": "北京", "unit": "celsius"}', "", "", [("get_weather", W)]),
    ("cohere", '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"city": "北京", "unit": "celsius"}}]<|END_ACTION|>',
     "", "", [("get_weather", W)]),
    # deepseek
    ("deepseek", f'Checking.{DS_B}{DS_CB}function{DS_SEP}get_weather\n```json\n{{"city": "北京", "unit": "celsius"}}\n```{DS_CE}\n{DS_CB}function{DS_SEP}a\n```json\n{{}}\n```{DS_CE}{DS_E}',
     "Checking.", "", [("get_weather", W), ("a", {})]),
    ("deepseek31", f'{DS_B}{DS_CB}get_weather{DS_SEP}{{"city": "北京", "unit": "celsius"}}{DS_CE}{DS_CB}search{DS_SEP}{{"filter": {{"tags": ["a", "b\\"q\\""], "range": [1, 2.5]}}, "note": "say \\"hi\\"\\n😀"}}{DS_CE}{DS_E} done',
     "done", "", [("get_weather", W), ("search", NESTED)]),
    ("deepseek32", '<｜DSML｜function_calls>\n<｜DSML｜invoke name="get_weather">\n<｜DSML｜parameter name="city" string="true">北京</｜DSML｜parameter>\n<｜DSML｜parameter name="unit" string="true">celsius</｜DSML｜parameter>\n</｜DSML｜invoke>\n<｜DSML｜invoke name="n">\n<｜DSML｜parameter name="k" string="false">{"a": [1, 2]}</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜function_calls>',
     "", "", [("get_weather", W), ("n", {"k": {"a": [1, 2]}})]),
    ("deepseek_v4", 'Hi<｜DSML｜tool_calls>\n<｜DSML｜invoke name="get_weather">\n<｜DSML｜parameter name="city" string="true">北京</｜DSML｜parameter>\n<｜DSML｜parameter name="unit" string="true">celsius</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>',
     "Hi", "", [("get_weather", W)]),
    # kimi / glm / minimax / step3 / qwen_xml / pythonic / harmony
    ("kimik2", '<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{"city": "北京", "unit": "celsius"}<|tool_call_end|><|tool_call_begin|>functions.a:1<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|>',
     "", "", [("get_weather", W), ("a", {})]),
    ("glm45_moe", "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>北京</arg_value>\n<arg_key>unit</arg_key>\n<arg_value>celsius</arg_value>\n</tool_call>",
     "", "", [("get_weather", W)]),
    ("glm47_moe", "ok<tool_call>get_weather<arg_key>city</arg_key><arg_value>北京</arg_value><arg_key>unit</arg_key><arg_value>celsius</arg_value></tool_call>",
     "ok", "", [("get_weather", W)]),
    ("minimax_m2", '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">北京</parameter>\n<parameter name="unit">celsius</parameter>\n</invoke>\n<invoke name="a">\n</invoke>\n</minimax:tool_call>',
     "", "", [("get_weather", W), ("a", {})]),
    ("step3", '<｜tool_calls_begin｜><｜tool_call_begin｜>function<｜tool_sep｜><steptml:invoke name="get_weather"><steptml:parameter name="city">北京</steptml:parameter><steptml:parameter name="unit">celsius</steptml:parameter></steptml:invoke><｜tool_call_end｜><｜tool_calls_end｜>',
     "", "", [("get_weather", W)]),
    ("qwen_xml", "I'll look.\n<tool_call>\n<function=get_weather>\n<parameter=city>\n北京\n</parameter>\n<parameter=unit>\ncelsius\n</parameter>\n</function>\n</tool_call>",
     "I'll look.\n", "", [("get_weather", W)]),
    ("qwen_xml", "<tool_call>\n<function=get_weather>\n<parameter=city>\n北京\n</parameter>\n<parameter=unit>\ncel", "", "", [("get_weather", None)]),
    ("pythonic", '[get_weather(city="北京", unit="celsius"), search(filter={"tags": ["a", "b\\"q\\""], "range": [1, 2.5]}, note="say \\"hi\\"\\n😀")]',
     "", "", [("get_weather", W), ("search", NESTED)]),
    ("pythonic", "[1, 2, 3] is a list", "[1, 2, 3] is a list", "", []),
    ("gpt_oss", '<|channel|>analysis<|message|>User wants weather in 北京.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "北京", "unit": "celsius"}<|call|>',
     "", "User wants weather in 北京.", [("get_weather", W)]),
    ("gpt_oss", "<|channel|>analysis<|message|>Simple.<|end|><|start|>assistant<|channel|>final<|message|>Hello 😀!<|return|>",
     "Hello 😀!", "Simple.", []),
]

REASONING_CASES = [
    # (parser, text, reasoning, content)
    ("deepseek_r1", "Let me think… 2+2=4.</think>\n\nThe answer is **4**.", "Let me think… 2+2=4.", "The answer is **4**."),
    ("deepseek_r1", "<think>\nhmm</think>ok", "\nhmm", "ok"),
    ("deepseek_r1", "cut off mid-thought <", "cut off mid-thought <", ""),
    ("qwen3", "<think>\nreason 🤔\n</think>\n\nanswer", "\nreason 🤔\n", "answer"),
    ("qwen3", "no thinking here, <think> is just text", "", "no thinking here, <think> is just text"),
    ("qwen3", "  <thin", "", "  <thin"),
    ("kimi", "\u25c1think\u25b7深思\u25c1/think\u25b7答案", "深思", "答案"),
    ("cohere_cmd", "<|START_THINKING|>plan<|END_THINKING|>done", "plan", "done"),
    ("qwen3_thinking", "a</think>b", "a", "b"),
]
