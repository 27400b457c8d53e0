"""Real model output, family by family, for the classes of issue 19.

Each output is the markup the family's published chat template renders for an
assistant turn with tool calls (the same text the model is trained to emit), with the
markers as the Rust gateway's parsers read them. A case: (id, parser, output,
finish_reason, tools, content, reasoning, calls as (name, arguments object)).
"""

from __future__ import annotations

from .cases import DS_B, DS_CB, DS_CE, DS_E, DS_SEP, K3_ARG, K3_CALL, K3_TOOLS, W


def tool(name: str, **props: object) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": props}}}


WEATHER = tool("get_weather", city={"type": "string"}, unit={"type": "string"})
SEARCH = tool("search", q={"type": "string"})
TOOLS = [WEATHER, SEARCH]
Q = {"q": "rust"}

# --- the two-call output of each family, cut inside the second call's arguments -------
# (output, where the cut falls: the text up to and including this marker survives)
_TWO_CALLS = {
    "qwen": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "北京", "unit": "celsius"}}\n</tool_call>\n'
    '<tool_call>\n{"name": "search", "arguments": {"q": "rust"}}\n</tool_call>',
    "json": '[{"name": "get_weather", "arguments": {"city": "北京", "unit": "celsius"}}, {"name": "search", "arguments": {"q": "rust"}}]',
    "llama3": '<|python_tag|>{"name": "get_weather", "parameters": {"city": "北京", "unit": "celsius"}}; {"name": "search", "parameters": {"q": "rust"}}',
    "mistral": '[TOOL_CALLS]get_weather[ARGS]{"city": "北京", "unit": "celsius"}[TOOL_CALLS]search[ARGS]{"q": "rust"}',
    "deepseek": f'{DS_B}{DS_CB}function{DS_SEP}get_weather\n```json\n{{"city": "北京", "unit": "celsius"}}\n```{DS_CE}\n'
    f'{DS_CB}function{DS_SEP}search\n```json\n{{"q": "rust"}}\n```{DS_CE}{DS_E}',
    "deepseek31": f'{DS_B}{DS_CB}get_weather{DS_SEP}{{"city": "北京", "unit": "celsius"}}{DS_CE}{DS_CB}search{DS_SEP}{{"q": "rust"}}{DS_CE}{DS_E}',
    "deepseek32": '<｜DSML｜function_calls>\n<｜DSML｜invoke name="get_weather">\n<｜DSML｜parameter name="city" string="true">北京</｜DSML｜parameter>\n'
    '<｜DSML｜parameter name="unit" string="true">celsius</｜DSML｜parameter>\n</｜DSML｜invoke>\n<｜DSML｜invoke name="search">\n'
    '<｜DSML｜parameter name="q" string="true">rust</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜function_calls>',
    "kimik2": '<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{"city": "北京", "unit": "celsius"}'
    '<|tool_call_end|><|tool_call_begin|>functions.search:1<|tool_call_argument_begin|>{"q": "rust"}<|tool_call_end|><|tool_calls_section_end|>',
    "glm45_moe": "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>北京</arg_value>\n<arg_key>unit</arg_key>\n<arg_value>celsius</arg_value>\n</tool_call>\n"
    "<tool_call>search\n<arg_key>q</arg_key>\n<arg_value>rust</arg_value>\n</tool_call>",
    "glm47_moe": "<tool_call>get_weather<arg_key>city</arg_key><arg_value>北京</arg_value><arg_key>unit</arg_key><arg_value>celsius</arg_value></tool_call>"
    "<tool_call>search<arg_key>q</arg_key><arg_value>rust</arg_value></tool_call>",
    "minimax_m2": '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">北京</parameter>\n<parameter name="unit">celsius</parameter>\n</invoke>\n'
    '<invoke name="search">\n<parameter name="q">rust</parameter>\n</invoke>\n</minimax:tool_call>',
    "step3": '<｜tool_calls_begin｜><｜tool_call_begin｜>function<｜tool_sep｜><steptml:invoke name="get_weather"><steptml:parameter name="city">北京</steptml:parameter>'
    '<steptml:parameter name="unit">celsius</steptml:parameter></steptml:invoke><｜tool_call_end｜><｜tool_call_begin｜>function<｜tool_sep｜>'
    '<steptml:invoke name="search"><steptml:parameter name="q">rust</steptml:parameter></steptml:invoke><｜tool_call_end｜><｜tool_calls_end｜>',
    "qwen_xml": "<tool_call>\n<function=get_weather>\n<parameter=city>\n北京\n</parameter>\n<parameter=unit>\ncelsius\n</parameter>\n</function>\n</tool_call>\n"
    "<tool_call>\n<function=search>\n<parameter=q>\nrust\n</parameter>\n</function>\n</tool_call>",
    "pythonic": '[get_weather(city="北京", unit="celsius"), search(q="rust")]',
    "gpt_oss": '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "北京", "unit": "celsius"}<|call|>'
    '<|start|>assistant<|channel|>commentary to=functions.search <|constrain|>json<|message|>{"q": "rust"}<|call|>',
    "kimi_k3": K3_TOOLS(K3_CALL("get_weather", 1, K3_ARG("city", "string", "北京") + K3_ARG("unit", "string", "celsius"))
                        + K3_CALL("search", 2, K3_ARG("q", "string", "rust"))),
    "inkling": '<|message_model|>get_weather<|content_invoke_tool_json|>{"name":"get_weather","args":{"city":"北京","unit":"celsius"}}<|end_message|>'
    '<|message_model|>search<|content_invoke_tool_json|>{"name":"search","args":{"q":"rust"}}<|end_message|>',
    "cohere": '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"city": "北京", "unit": "celsius"}}, '
    '{"tool_call_id": "1", "tool_name": "search", "parameters": {"q": "rust"}}]<|END_ACTION|>',
    "sarashina": "<|tool_calls|>[{'name': 'get_weather', 'arguments': {'city': '北京', 'unit': 'celsius'}}, {'name': 'search', 'arguments': {'q': 'rust'}}]",
}
TWO_CALLS = {name: (text, [("get_weather", W), ("search", Q)]) for name, text in _TWO_CALLS.items()}


def cut_in_second_call(text: str) -> str:
    """The output cut at max_tokens inside the second call's arguments (after "ru")."""
    return text[: text.index("ru", text.index("search")) + 2]


TRUNCATED = [
    (f"cut-{name}", name, "Checking. " + cut_in_second_call(text) if name not in ("json", "llama3", "pythonic", "sarashina") else cut_in_second_call(text),
     "length", TOOLS, "Checking. " if name not in ("json", "llama3", "pythonic", "sarashina") else "", "", [("get_weather", W)])
    for name, (text, _) in TWO_CALLS.items()
] + [
    # cut inside the first call: nothing is emitted, not even a call with "{}"
    ("cut-first-qwen_xml", "qwen_xml", "<tool_call>\n<function=get_weather>\n<parameter=city>\n北京\n</parameter>\n", "length", TOOLS, "", "", []),
    ("cut-first-glm47", "glm47_moe", "<tool_call>get_weather<arg_key>city</arg_key><arg_value>北京</arg_value>", "length", TOOLS, "", "", []),
    ("cut-first-pythonic", "pythonic", '[get_weather(city="北京", unit="cel', "length", TOOLS, "", "", []),
    ("cut-first-mistral", "mistral", 'Sure.[TOOL_CALLS]get_weather[ARGS]{"city": "北京"', "length", TOOLS, "Sure.", "", []),
    ("cut-first-llama3", "llama3", '{"name": "get_weather", "parameters": {"city": "北京"', "length", TOOLS, "", "", []),
    ("cut-first-hermes-before-close", "qwen", '<tool_call>\n{"name": "search", "arguments": {"q": "rust"}}\n', "length", TOOLS, "", "", []),
    # the same outputs ending normally: a call left open at the end is closed, as before
    ("stop-open-glm47", "glm47_moe", "<tool_call>get_weather<arg_key>city</arg_key><arg_value>北京</arg_value>", "stop", TOOLS, "", "",
     [("get_weather", {"city": "北京"})]),
    ("stop-hermes-no-close", "qwen", '<tool_call>\n{"name": "search", "arguments": {"q": "rust"}}\n', "stop", TOOLS, "", "", [("search", Q)]),
]

# --- class 3: a union with null --------------------------------------------------------
NULLABLE = tool(
    "find", where={"type": ["string", "null"]}, limit={"anyOf": [{"type": "integer"}, {"type": "null"}]},
    key={"type": ["integer", "string"]}, tag={"type": ["string", "null"]},
)
_U = {"where": None, "limit": None, "key": "abc", "tag": "null-ish"}
_U2 = {"where": "Paris", "limit": 5, "key": 7, "tag": "x"}
UNION = [
    ("union-qwen_xml", "qwen_xml", "<tool_call>\n<function=find>\n<parameter=where>\nnull\n</parameter>\n<parameter=limit>\nnull\n</parameter>\n"
     "<parameter=key>\nabc\n</parameter>\n<parameter=tag>\nnull-ish\n</parameter>\n</function>\n</tool_call>", "stop", [NULLABLE], "", "", [("find", _U)]),
    ("union-qwen_xml-values", "qwen_xml", "<tool_call>\n<function=find>\n<parameter=where>\nParis\n</parameter>\n<parameter=limit>\n5\n</parameter>\n"
     "<parameter=key>\n7\n</parameter>\n<parameter=tag>\nx\n</parameter>\n</function>\n</tool_call>", "stop", [NULLABLE], "", "", [("find", _U2)]),
    ("union-glm45", "glm45_moe", "<tool_call>find\n<arg_key>where</arg_key>\n<arg_value>null</arg_value>\n<arg_key>limit</arg_key>\n<arg_value>null</arg_value>\n"
     "<arg_key>key</arg_key>\n<arg_value>abc</arg_value>\n<arg_key>tag</arg_key>\n<arg_value>null-ish</arg_value>\n</tool_call>", "stop", [NULLABLE], "", "", [("find", _U)]),
    ("union-glm47", "glm47_moe", "<tool_call>find<arg_key>where</arg_key><arg_value>null</arg_value><arg_key>limit</arg_key><arg_value>5</arg_value>"
     "<arg_key>key</arg_key><arg_value>7</arg_value><arg_key>tag</arg_key><arg_value>x</arg_value></tool_call>", "stop", [NULLABLE], "", "", [("find", {**_U2, "where": None})]),
    ("union-minimax", "minimax_m2", '<minimax:tool_call>\n<invoke name="find">\n<parameter name="where">null</parameter>\n<parameter name="limit">null</parameter>\n'
     '<parameter name="key">abc</parameter>\n<parameter name="tag">null-ish</parameter>\n</invoke>\n</minimax:tool_call>', "stop", [NULLABLE], "", "", [("find", _U)]),
    ("union-step3", "step3", '<｜tool_calls_begin｜><｜tool_call_begin｜>function<｜tool_sep｜><steptml:invoke name="find"><steptml:parameter name="where">null</steptml:parameter>'
     '<steptml:parameter name="limit">null</steptml:parameter><steptml:parameter name="key">abc</steptml:parameter><steptml:parameter name="tag">null-ish</steptml:parameter>'
     '</steptml:invoke><｜tool_call_end｜><｜tool_calls_end｜>', "stop", [NULLABLE], "", "", [("find", _U)]),
]

_MM = "]<]minimax[>["
_HY = "<tool_call:opensource>find" + "".join(
    f"<arg_key:opensource>{k}</arg_key:opensource><arg_value:opensource>{v}</arg_value:opensource>"
    for k, v in (("where", "null"), ("limit", "null"), ("key", "abc"), ("tag", "null-ish"))) + "</tool_call:opensource>"
UNION += [
    ("union-seed_oss", "seed_oss", "<seed:tool_call>\n<function=find>\n<parameter=where>null</parameter>\n<parameter=limit>null</parameter>\n"
     "<parameter=key>abc</parameter>\n<parameter=tag>null-ish</parameter>\n</function>\n</seed:tool_call>", "stop", [NULLABLE], "", "", [("find", _U)]),
    ("union-minimax_m3", "minimax_m3", f'{_MM}<tool_call>\n{_MM}<invoke name="find">\n{_MM}<where>null{_MM}</where>\n{_MM}<limit>null{_MM}</limit>\n'
     f"{_MM}<key>abc{_MM}</key>\n{_MM}<tag>null-ish{_MM}</tag>\n{_MM}</invoke>\n{_MM}</tool_call>", "stop", [NULLABLE], "", "", [("find", _U)]),
    ("union-hy_v4", "hy_v4", f"<tool_calls:opensource>{_HY}</tool_calls:opensource>", "stop", [NULLABLE], "", "", [("find", _U)]),
    ("union-dots3", "dots3", '<dots_function_call>\n<invoke name="find">\n<parameter name="where">null</parameter>\n<parameter name="limit">null</parameter>\n'
     '<parameter name="key">abc</parameter>\n<parameter name="tag">null-ish</parameter>\n</invoke>\n</dots_function_call>', "stop", [NULLABLE], "", "", [("find", _U)]),
    ("union-gemma4", "gemma4", '<|tool_call>call:find{where:null,limit:null,key:<|"|>abc<|"|>,tag:<|"|>null-ish<|"|>}<tool_call|>', "stop", [NULLABLE], "", "", [("find", _U)]),
]

# --- class 4: text before and after the call section ----------------------------------
_ONE = {name: text.split("search")[0] for name, text in _TWO_CALLS.items()}
AROUND = [
    ("around-qwen", "qwen", 'Checking.<tool_call>\n{"name": "search", "arguments": {"q": "rust"}}\n</tool_call>\nDone.', "stop", TOOLS, "Checking.\nDone.", "", [("search", Q)]),
    ("around-qwen_xml", "qwen_xml", "Checking.\n<tool_call>\n<function=search>\n<parameter=q>\nrust\n</parameter>\n</function>\n</tool_call>\nDone.", "stop", TOOLS,
     "Checking.\nDone.", "", [("search", Q)]),
    ("around-glm47", "glm47_moe", "Checking.<tool_call>search<arg_key>q</arg_key><arg_value>rust</arg_value></tool_call>\nDone.", "stop", TOOLS, "Checking.\nDone.", "", [("search", Q)]),
    ("around-minimax", "minimax_m2", 'Checking.<minimax:tool_call>\n<invoke name="search">\n<parameter name="q">rust</parameter>\n</invoke>\n</minimax:tool_call>\nDone.', "stop", TOOLS,
     "Checking.\nDone.", "", [("search", Q)]),
    ("around-deepseek31", "deepseek31", f'Checking.{DS_B}{DS_CB}search{DS_SEP}{{"q": "rust"}}{DS_CE}{DS_E}\nDone.', "stop", TOOLS, "Checking.\nDone.", "", [("search", Q)]),
    ("around-kimik2", "kimik2", 'Checking.<|tool_calls_section_begin|><|tool_call_begin|>functions.search:0<|tool_call_argument_begin|>{"q": "rust"}<|tool_call_end|><|tool_calls_section_end|>\nDone.',
     "stop", TOOLS, "Checking.\nDone.", "", [("search", Q)]),
    ("around-mistral", "mistral", 'Checking.[TOOL_CALLS]search[ARGS]{"q": "rust"}\nDone.', "stop", TOOLS, "Checking.\nDone.", "", [("search", Q)]),
    ("around-llama4", "llama4", 'Checking.<|python_start|>[search(q="rust")]<|python_end|>\nDone.', "stop", TOOLS, "Checking.\nDone.", "", [("search", Q)]),
    ("around-cohere", "cohere", 'Checking.<|START_ACTION|>[{"tool_name": "search", "parameters": {"q": "rust"}}]<|END_ACTION|>\nDone.', "stop", TOOLS, "Checking.\nDone.", "", [("search", Q)]),
    ("around-kimi_k3", "kimi_k3", "Checking." + K3_TOOLS(K3_CALL("search", 1, K3_ARG("q", "string", "rust"))) + "\nDone.", "stop", TOOLS, "Checking.\nDone.", "", [("search", Q)]),
    ("around-sarashina", "sarashina", "Checking.<|tool_calls|>[{'name': 'search', 'arguments': {'q': 'rust'}}]\nDone.", "stop", TOOLS, "Checking.\nDone.", "", [("search", Q)]),
    ("around-json", "json", 'Checking:\n{"name": "search", "arguments": {"q": "rust"}}\nDone.', "stop", TOOLS, "Checking:\nDone.", "", [("search", Q)]),
    ("around-gpt_oss", "gpt_oss", 'Checking.<|channel|>commentary to=functions.search <|constrain|>json<|message|>{"q": "rust"}<|call|>\nDone.', "stop", TOOLS,
     "Checking.\nDone.", "", [("search", Q)]),
    ("around-two-sections", "qwen", 'Checking.\n<tool_call>\n{"name": "search", "arguments": {"q": "rust"}}\n</tool_call>\n<tool_call>\n{"name": "search", "arguments": {"q": "rust"}}\n</tool_call>\n',
     "stop", TOOLS, "Checking.\n", "", [("search", Q), ("search", Q)]),
]

# --- class 5: JSON that is not a call ---------------------------------------------------
NOT_CALLS = [
    ("json-answer", "json", '{"result": 42, "unit": "km"}', "stop", TOOLS, '{"result": 42, "unit": "km"}', "", []),
    ("json-named-answer", "json", '{"name": "Alice", "age": 30}', "stop", TOOLS, '{"name": "Alice", "age": 30}', "", []),
    ("json-list-answer", "json", '[{"name": "Alice"}, {"name": "Bob"}]', "stop", TOOLS, '[{"name": "Alice"}, {"name": "Bob"}]', "", []),
    ("json-after-prose", "json", 'Let me check. {"name": "get_weather", "arguments": {"city": "北京", "unit": "celsius"}}', "stop", TOOLS, "Let me check. ", "", [("get_weather", W)]),
    ("json-prose-braces", "json", "Use {x} and [1, 2] here.", "stop", TOOLS, "Use {x} and [1, 2] here.", "", []),
    ("llama3-answer", "llama3", '{"name": "Alice", "parameters": {"age": 30}}', "stop", TOOLS, '{"name": "Alice", "parameters": {"age": 30}}', "", []),
    ("llama3-no-name", "llama3", '{"answer": 42}', "stop", TOOLS, '{"answer": 42}', "", []),
    ("llama3-tag-unknown", "llama3", 'Sure: <|python_tag|>{"name": "Alice", "parameters": {}}', "stop", TOOLS, 'Sure: {"name": "Alice", "parameters": {}}', "", []),
    ("llama3-call", "llama3", '{"name": "search", "parameters": {"q": "rust"}}', "stop", TOOLS, "", "", [("search", Q)]),
]

# --- class 7 -----------------------------------------------------------------------------
SMALLER = [
    ("prose-empty-pair", "qwen", "Wrap calls in <tool_call></tool_call> tags.", "stop", TOOLS, "Wrap calls in <tool_call></tool_call> tags.", "", []),
    ("prose-marker", "qwen", "The <tool_call> tag starts a call.", "stop", TOOLS, "The <tool_call> tag starts a call.", "", []),
    ("prose-marker-xml", "qwen_xml", "The <tool_call> tag starts a call.", "stop", TOOLS, "The <tool_call> tag starts a call.", "", []),
    ("prose-marker-glm", "glm47_moe", "The <tool_call> tag starts a call.", "stop", TOOLS, "The <tool_call> tag starts a call.", "", []),
    ("kimi-singular", "kimik2", 'Sure.<|tool_call_section_begin|><|tool_call_begin|>functions.search:0<|tool_call_argument_begin|>{"q": "rust"}<|tool_call_end|><|tool_call_section_end|>',
     "stop", TOOLS, "Sure.", "", [("search", Q)]),
    ("deepseek-eos", "deepseek", _TWO_CALLS["deepseek"] + "<｜end▁of▁sentence｜>", "stop", TOOLS, "", "", TWO_CALLS["deepseek"][1]),
    ("deepseek31-eos", "deepseek31", _TWO_CALLS["deepseek31"] + "<｜end▁of▁sentence｜>", "stop", TOOLS, "", "", TWO_CALLS["deepseek31"][1]),
    ("deepseek32-eos", "deepseek32", _TWO_CALLS["deepseek32"] + "<｜end▁of▁sentence｜>", "stop", TOOLS, "", "", TWO_CALLS["deepseek32"][1]),
]

CLASS_CASES = TRUNCATED + UNION + AROUND + NOT_CALLS + SMALLER
