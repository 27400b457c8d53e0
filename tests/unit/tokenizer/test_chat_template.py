"""Chat templates: the HF-compatible environment, the sandbox, the built-in templates."""

from __future__ import annotations

import datetime
import json

import pytest

from smg.tokenizer import ChatTemplate, ChatTemplateError, Tokenizer, TokenizerError
from smg.tokenizer.templates import BUILTIN_TEMPLATES, builtin_template

SIMPLE = (
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "20 degrees"},
    {"role": "assistant", "content": "It is 20 degrees."},
    {"role": "user", "content": "Thanks!"},
]


@pytest.fixture
def tok(builtin_tok: Tokenizer) -> Tokenizer:
    return builtin_tok


def test_generation_prompt_toggle() -> None:
    t = ChatTemplate(SIMPLE)
    msgs = [{"role": "user", "content": "hi"}]
    assert t.render(msgs) == "<user>hi</user>\n<assistant>"
    assert t.render(msgs, add_generation_prompt=False) == "<user>hi</user>\n"


def test_continue_final_message_cuts_after_content() -> None:
    t = ChatTemplate(SIMPLE)
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "The answer is"}]
    assert t.render(msgs, continue_final_message=True) == "<user>hi</user>\n<assistant>The answer is"
    # Trailing whitespace the template keeps is kept; as HF transformers does.
    msgs[-1]["content"] = "The answer is "
    assert t.render(msgs, continue_final_message=True).endswith("<assistant>The answer is ")
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "The end"}]
    openai = ChatTemplate(
        "{% for m in messages %}{% for p in m.content %}[{{ p.text }}]{% endfor %}{% endfor %}"
    )
    assert openai.render([{"role": "assistant", "content": parts}], continue_final_message=True) == (
        "[a][The end"
    )


def test_continue_final_message_with_a_rewriting_template_is_an_error() -> None:
    t = ChatTemplate("{% for m in messages %}{{ m.content | upper }}{% endfor %}")
    with pytest.raises(ChatTemplateError, match="does not appear"):
        t.render([{"role": "assistant", "content": "abc"}], continue_final_message=True)
    with pytest.raises(ChatTemplateError):
        t.render([], continue_final_message=True)


def test_kwargs_and_special_tokens_reach_the_template() -> None:
    t = ChatTemplate("{{ bos_token }}{% if enable_thinking %}think{% else %}fast{% endif %}{{ eos_token }}")
    assert t.render([], enable_thinking=True, bos_token="<s>", eos_token="</s>") == "<s>think</s>"
    assert t.render([], enable_thinking=False) == "fast"


def test_raise_exception_becomes_chat_template_error() -> None:
    t = ChatTemplate(
        "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation must start with user') }}{% endif %}ok"
    )
    assert t.render([{"role": "user", "content": "x"}]) == "ok"
    with pytest.raises(ChatTemplateError) as info:
        t.render([{"role": "assistant", "content": "x"}])
    assert str(info.value) == "Conversation must start with user"
    assert isinstance(info.value, TokenizerError)


@pytest.mark.parametrize(
    "source",
    [
        "{{ messages.__class__.__mro__[1].__subclasses__() }}",
        "{{ raise_exception.__globals__ }}",
        "{{ ''.__class__.__base__.__subclasses__() }}",
        "{% set _ = messages.append({'role': 'x'}) %}",
        "{% set _ = messages[0].update({'role': 'x'}) %}",
    ],
)
def test_sandbox_blocks_internals_and_mutation(source: str) -> None:
    msgs = [{"role": "user", "content": "hi"}]
    with pytest.raises(ChatTemplateError):
        ChatTemplate(source).render(msgs)
    assert msgs == [{"role": "user", "content": "hi"}]


def test_tojson_is_plain_json() -> None:
    value = {"b": "<tag> & é", "a": [1, 2]}
    assert ChatTemplate("{{ x | tojson }}").render([], x=value) == json.dumps(value, ensure_ascii=False)
    assert ChatTemplate("{{ x | tojson(indent=2) }}").render([], x=value) == json.dumps(
        value, ensure_ascii=False, indent=2
    )
    assert ChatTemplate("{{ x | tojson(sort_keys=true) }}").render([], x=value).startswith('{"a"')


def test_strftime_now_loopcontrols_and_generation_blocks() -> None:
    years = {str(datetime.datetime.now().year + d) for d in (-1, 0, 1)}
    assert ChatTemplate("{{ strftime_now('%Y') }}").render([]) in years
    loop = ChatTemplate("{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.content }}{% endfor %}")
    assert loop.render([{"content": "a"}, {"content": "b"}]) == "a"
    gen = ChatTemplate("{% for m in messages %}{% generation %}[{{ m.content }}]{% endgeneration %}{% endfor %}")
    assert gen.render([{"content": "a"}]) == "[a]"


def test_syntax_error_at_compile_time() -> None:
    with pytest.raises(TokenizerError, match="does not compile"):
        ChatTemplate("{% if %}")


def test_runtime_errors_are_chat_template_errors() -> None:
    with pytest.raises(ChatTemplateError, match="chat template error"):
        ChatTemplate("{{ messages[0].content + 1 }}").render([{"content": "a"}])


def test_content_format_detection_and_flattening() -> None:
    string = ChatTemplate(SIMPLE)
    assert string.content_format == "string"
    parts = [{"type": "text", "text": "one"}, {"type": "image_url", "image_url": {}}, {"type": "text", "text": "two"}]
    assert string.render([{"role": "user", "content": parts}], add_generation_prompt=False) == (
        "<user>one\ntwo</user>\n"
    )
    via_var = ChatTemplate(
        "{% for m in messages %}{% set c = m['content'] %}{% for p in c %}{{ p.type }} {% endfor %}{% endfor %}"
    )
    assert via_var.content_format == "openai"
    assert via_var.render([{"role": "user", "content": parts}]) == "text image_url text "


@pytest.mark.parametrize("name", BUILTIN_TEMPLATES)
def test_builtin_templates_compile(name: str) -> None:
    assert ChatTemplate(builtin_template(name)).content_format == "string"


def test_builtin_templates_render_conversations_with_tools(tok: Tokenizer) -> None:
    text = tok.apply_chat_template(CONVERSATION, tools=TOOLS)
    for needle in ("Be brief.", "Weather in Paris?", "get_weather", '{"city": "Paris"}', "20 degrees", "Thanks!"):
        assert needle in text
    assert text.index("Weather in Paris?") < text.index("20 degrees") < text.index("Thanks!")
    # The tools' JSON schema is in the prompt exactly as tojson writes it.
    assert json.dumps(TOOLS[0]["function"]["parameters"]) in text
    without = tok.apply_chat_template(CONVERSATION)
    assert '"description": "Weather for a city"' not in without and "Weather for a city" not in without


def test_builtin_template_markers_are_single_tokens(tok: Tokenizer) -> None:
    text = tok.apply_chat_template(CONVERSATION, tools=TOOLS)
    ids = tok.encode(text)
    assert tok.decode(ids, skip_special_tokens=False) == text
    markers = (
        ["<｜User｜>", "<｜Assistant｜>", "<｜tool▁calls▁begin｜>", "<｜tool▁output▁begin｜>"]
        if tok.name == "deepseek"
        else ["<|im_start|>", "<|im_end|>"]
    )
    for marker in markers:
        marker_id = tok.token_to_id(marker)
        assert marker_id is not None and marker_id in ids, marker


def test_builtin_generation_prompt_and_continuation(tok: Tokenizer) -> None:
    msgs = [{"role": "user", "content": "Hi"}]
    with_prompt = tok.apply_chat_template(msgs)
    without = tok.apply_chat_template(msgs, add_generation_prompt=False)
    assert with_prompt.startswith(without) and len(with_prompt) > len(without)
    partial = [*msgs, {"role": "assistant", "content": "Hello, I am"}]
    text = tok.apply_chat_template(partial, continue_final_message=True)
    assert text.endswith("Hello, I am")
    assert text.startswith(without)


def test_builtin_thinking_toggles(tok: Tokenizer) -> None:
    msgs = [{"role": "user", "content": "Hi"}]
    if tok.name == "qwen":
        on, off = tok.apply_chat_template(msgs), tok.apply_chat_template(msgs, enable_thinking=False)
        assert off == on + "<think>\n\n</think>\n\n"
    else:
        on, off = tok.apply_chat_template(msgs, thinking=True), tok.apply_chat_template(msgs)
        assert on.endswith("<｜Assistant｜><think>") and off.endswith("<｜Assistant｜></think>")


def test_variables_and_thinking_key(tok: Tokenizer) -> None:
    assert tok.chat_template is not None
    assert {"messages", "tools", "add_generation_prompt"} <= tok.chat_template.variables
    assert tok.chat_template.thinking_key == ("thinking" if tok.name == "deepseek" else "enable_thinking")
    assert ChatTemplate(SIMPLE).thinking_key is None


def test_string_content_becomes_a_part_for_openai_templates() -> None:
    t = ChatTemplate("{% for m in messages %}{% for p in m.content %}[{{ p.type }}:{{ p.text }}]{% endfor %}{% endfor %}")
    assert t.content_format == "openai"
    assert t.render([{"role": "user", "content": "hi"}]) == "[text:hi]"


def test_tool_call_arguments_are_parsed_for_templates() -> None:
    t = ChatTemplate(
        "{% for m in messages %}{% for c in m.tool_calls %}{{ c.function.arguments | tojson }};{% endfor %}{% endfor %}"
    )
    calls = [
        {"type": "function", "function": {"name": "f", "arguments": '{"city": "Paris"}'}},
        {"type": "function", "function": {"name": "g", "arguments": "not json"}},
        {"type": "function", "function": {"name": "h", "arguments": {"already": "dict"}}},
    ]
    msgs = [{"role": "assistant", "content": None, "tool_calls": calls}]
    assert t.render(msgs) == '{"city": "Paris"};"not json";{"already": "dict"};'
    # The caller's messages are not changed.
    assert calls[0]["function"]["arguments"] == '{"city": "Paris"}'


def test_client_chat_template_kwargs(qwen_tok: Tokenizer) -> None:
    msgs = [{"role": "user", "content": "Hi"}]
    off = qwen_tok.apply_chat_template(msgs, chat_template_kwargs={"enable_thinking": False})
    assert off == qwen_tok.apply_chat_template(msgs, enable_thinking=False)
    # An explicit keyword wins over the client's mapping.
    on = qwen_tok.apply_chat_template(msgs, chat_template_kwargs={"enable_thinking": False}, enable_thinking=True)
    assert on == qwen_tok.apply_chat_template(msgs)
    with pytest.raises(ChatTemplateError, match="add_generation_prompt"):
        qwen_tok.apply_chat_template(msgs, chat_template_kwargs={"add_generation_prompt": False})
