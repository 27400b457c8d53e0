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

# --- formats added later: Kimi-K3 XTML, Inkling TML, Sarashina, Llama 4 wrapper ----------

K3_ARG = '<|open|>argument key="{}" type="{}"<|sep|>{}<|close|>argument<|sep|>'.format
K3_CALL = '<|open|>call tool="{}" index="{}"<|sep|>{}<|close|>call<|sep|>'.format
K3_TOOLS = "<|open|>tools<|sep|>{}<|close|>tools<|sep|>".format
NESTED_JSON = '{"filter": {"tags": ["a", "b\\"q\\""], "range": [1, 2.5]}, "note": "say \\"hi\\"\\n😀"}'
INK_CALL = '<|message_model|>{0}<|content_invoke_tool_json|>{{"name":"{0}","args":{1}}}<|end_message|>'.format

NEW_FORMAT_CASES = [
    ("kimi_k3", "<|open|>response<|sep|>Let me check 北京.<|close|>response<|sep|>"
     + K3_TOOLS(K3_CALL("get_weather", 1, K3_ARG("city", "string", "北京") + K3_ARG("unit", "string", "celsius"))
                + K3_CALL("search", 2, K3_ARG("filter", "object", '{"tags": ["a", "b\\"q\\""], "range": [1, 2.5]}')
                          + K3_ARG("note", "string", 'say "hi"\n😀')))
     + "<|close|>message<|sep|>",
     "Let me check 北京.", "", [("get_weather", W), ("search", NESTED)]),
    ("kimi_k3", K3_TOOLS(K3_CALL("a&amp;b", 1, "") + K3_CALL("n", 2, K3_ARG("k", "number", "3") + K3_ARG("ok", "boolean", "true"))),
     "", "", [("a&b", {}), ("n", {"k": 3, "ok": True})]),
    ("kimi_k3", "plain answer <|open|> not a channel", "plain answer <|open|> not a channel", "", []),
    ("kimi_k3", K3_TOOLS(K3_CALL("get_weather", 1, K3_ARG("city", "string", "北京") + '<|open|>argument key="unit" type="string"<|sep|>cel'))[:-len("<|close|>tools<|sep|>")],
     "", "", [("get_weather", None)]),
    ("inkling", "<|message_model|><|content_text|>I'll check 北京.<|end_message|>" + INK_CALL("get_weather", '{"city":"北京","unit":"celsius"}')
     + INK_CALL("search", NESTED_JSON) + "<|content_model_end_sampling|>",
     "I'll check 北京.", "", [("get_weather", W), ("search", NESTED)]),
    ("inkling", "<|content_text|>Before<|end_message|><|content_invoke_tool_json|>not-json<|end_message|>"
     "<|content_invoke_tool_text|>search: rust<|end_message|>" + INK_CALL("a", "{}") + "<|content_text|>After<|end_message|>",
     "BeforeAfter", "", [("a", {})]),
    ("inkling", '<|content_invoke_tool_json|>{"name":"get_weather","args":{"city":"北', "", "", [("get_weather", None)]),
    ("sarashina", "<|tool_calls|>[{'name': 'get_weather', 'arguments': {'city': '北京', 'unit': 'celsius'}}, {'name': 'a', 'arguments': {}}]",
     "", "", [("get_weather", W), ("a", {})]),
    ("sarashina", "[{'name': 'search', 'arguments': {'filter': {'tags': ['a', 'b\"q\"'], 'range': [1, 2.5]}, 'note': 'say \"hi\"\\n😀'}}] done",
     "done", "", [("search", NESTED)]),
    ("sarashina", "Checking.<|tool_calls|>[{'name': 'get_weather', 'arguments': {'city': '北京', 'unit': 'celsius'}}, {'name': 'x', 'argu",
     "Checking.", "", [("get_weather", W)]),
    ("sarashina", "[{'a': 1}] is just a list", "[{'a': 1}] is just a list", "", []),
    ("llama4", '<|python_start|>[get_weather(city="北京", unit="celsius"), a()]<|python_end|>', "", "", [("get_weather", W), ("a", {})]),
    ("llama4", 'Let me check 北京. <|python_start|>[get_weather(city="北京", unit="celsius")]<|python_end|> Done.', "Let me check 北京. Done.", "", [("get_weather", W)]),
    ("llama4", "A list [f(x=1)] inside prose is text.", "A list [f(x=1)] inside prose is text.", "", []),
]

# --- edge cases in the older formats ------------------------------------------------------

EDGE_CASES = [
    # text after calls
    ("qwen", '<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\nDone 😀.', "Done 😀.", "", [("a", {})]),
    ("kimik2", 'Sure<|tool_calls_section_begin|><|tool_call_begin|>functions.a:0<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|> then more',
     "Sure then more", "", [("a", {})]),
    ("pythonic", '[get_weather(city="北京", unit="celsius")] Here you go.', "Here you go.", "", [("get_weather", W)]),
    ("cohere", '<|START_ACTION|>[{"tool_name": "a", "parameters": {}}]<|END_ACTION|>after', "after", "", [("a", {})]),
    ("cohere", '<|START_RESPONSE|>Let me search 北京.<|END_RESPONSE|>\n<|START_ACTION|>\n{"tool_name": "search", "parameters": {"q": "rust"}}\n<|END_ACTION|><|START_TEXT|>Done.<|END_TEXT|>',
     "Let me search 北京.\nDone.", "", [("search", {"q": "rust"})]),
    # empty arguments, missing arguments
    ("qwen", '<tool_call>\n{"name": "ping"}\n</tool_call>', "", "", [("ping", {})]),
    ("mistral", '[TOOL_CALLS]ping[ARGS]{}', "", "", [("ping", {})]),
    ("deepseek31", f"{DS_B}{DS_CB}ping{DS_SEP}{{}}{DS_CE}{DS_E}", "", "", [("ping", {})]),
    ("minimax_m2", '<minimax:tool_call>\n<invoke name="ping">\n</invoke>\n</minimax:tool_call>', "", "", [("ping", {})]),
    # nested JSON with escaped quotes and unicode
    ("kimik2", f"<|tool_calls_section_begin|><|tool_call_begin|>functions.search:0<|tool_call_argument_begin|>{NESTED_JSON}<|tool_call_end|><|tool_calls_section_end|>",
     "", "", [("search", NESTED)]),
    ("mistral", f'[TOOL_CALLS] [{{"name": "search", "arguments": {NESTED_JSON}}}]', "", "", [("search", NESTED)]),
    ("llama3", f'<|python_tag|>{{"name": "search", "parameters": {NESTED_JSON}}}', "", "", [("search", NESTED)]),
    ("gpt_oss", f"<|channel|>commentary to=functions.search <|constrain|>json<|message|>{NESTED_JSON}<|call|>", "", "", [("search", NESTED)]),
    # truncated output inside the arguments (max_tokens)
    ("kimik2", '<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{"city": "北', "", "", [("get_weather", None)]),
    ("deepseek31", f'{DS_B}{DS_CB}get_weather{DS_SEP}{{"city": "北京", "unit', "", "", [("get_weather", None)]),
    ("mistral", '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Pa', "", "", [("get_weather", None)]),
    ("llama3", '<|python_tag|>{"name": "get_weather", "parameters": {"ci', "", "", [("get_weather", None)]),
    ("json", '{"name": "get_weather", "arguments": {"city": "北京", "u', "", "", [("get_weather", None)]),
    ("gpt_oss", '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "北', "", "", [("get_weather", None)]),
    ("deepseek32", '<｜DSML｜function_calls>\n<｜DSML｜invoke name="get_weather">\n<｜DSML｜parameter name="city" string="true">北京</｜DSML｜parameter>\n<｜DSML｜parameter name="unit" string="true">cel',
     "", "", [("get_weather", None)]),
    ("minimax_m2", '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">北京</parameter>\n<parameter name="unit">cel', "", "", [("get_weather", None)]),
    ("glm47_moe", "<tool_call>get_weather<arg_key>city</arg_key><arg_value>北", "", "", [("get_weather", None)]),
    ("step3", '<｜tool_calls_begin｜><｜tool_call_begin｜>function<｜tool_sep｜><steptml:invoke name="get_weather"><steptml:parameter name="city">北', "", "", [("get_weather", None)]),
    ("deepseek", f'{DS_B}{DS_CB}function{DS_SEP}get_weather\n```json\n{{"city": "北', "", "", [("get_weather", None)]),
    ("cohere", '<|START_ACTION|>[{"tool_name": "get_weather", "parameters": {"city": "北', "", "", [("get_weather", None)]),
    ("gpt_oss", "<|channel|>analysis<|message|>thinking about 北", "", "thinking about 北", []),
    # what comes first decides the mode; an empty harmony channel name
    ("llama3", '[{"name": "f", "arguments": {}}] <|python_tag|>{"name": "g", "parameters": {}}',
     '<|python_tag|>{"name": "g", "parameters": {}}', "", [("f", {})]),
    ("gpt_oss", "<|channel|><|message|>hello<|end|>", "hello", "", []),
    # an end marker written inside a JSON string value
    ("kimik2", '<|tool_calls_section_begin|><|tool_call_begin|>functions.echo:0<|tool_call_argument_begin|>{"s": "<|tool_call_end|> ok"}<|tool_call_end|><|tool_calls_section_end|>',
     "", "", [("echo", {"s": "<|tool_call_end|> ok"})]),
    ("deepseek31", f'{DS_B}{DS_CB}echo{DS_SEP}{{"s": "{DS_CE}"}}{DS_CE}{DS_E}', "", "", [("echo", {"s": DS_CE})]),
    # several calls packed without separators
    ("qwen", '<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call><tool_call>{"name": "b", "arguments": {"y": "}{"}}</tool_call>',
     "", "", [("a", {"x": 1}), ("b", {"y": "}{"})]),
]

TOOL_CASES = TOOL_CASES + NEW_FORMAT_CASES + EDGE_CASES

REASONING_CASES += [
    ("kimi_k3", "<|open|>think<|sep|>先想 🤔<|close|>think<|sep|>\n<|open|>response<|sep|>答案<|close|>response<|sep|><|close|>message<|sep|>", "先想 🤔", "答案"),
    ("kimi_k3", "<|open|>think<|sep|>plan<|open|>tools<|sep|>x", "plan", "<|open|>tools<|sep|>x"),
    ("kimi_k3", "<|open|>response<|sep|>just an answer<|close|>response<|sep|>", "", "just an answer"),
    ("kimi_k3", "<|open|>think<|sep|>cut off <|clo", "cut off <|clo", ""),
    ("inkling", "<|message_model|><|content_thinking|>思考 🤔<|end_message|><|message_model|><|content_text|>answer<|end_message|>", "思考 🤔", "answer"),
    ("inkling", '<|content_thinking|>t<|end_message|><|message_model|>f<|content_invoke_tool_json|>{"name":"f","args":{}}<|end_message|>',
     "t", '<|content_invoke_tool_json|>{"name":"f","args":{}}<|end_message|>'),
    ("inkling", "<|content_invoke_tool_text|>dropped<|end_message|><|content_text|>kept", "", "kept"),
]
