"""ChatSandbox: the same renders and errors as jinja2's stock immutable sandbox, and no
escape through its fast paths (plain-dict keys, remembered attribute checks, direct calls)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from smg.tokenizer import ChatTemplate, ChatTemplateError
from smg.tokenizer.sandbox import ChatSandbox
from smg.tokenizer.template import _environment, _normalize
from smg.tokenizer.templates import BUILTIN_TEMPLATES, builtin_template


class _StockSandbox(ImmutableSandboxedEnvironment):
    """The environment chat templates had before ChatSandbox: stock checks throughout."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} is not allowed")


STOCK = _environment(_StockSandbox)

# Templates written to touch what real chat templates touch: loop attributes, namespace,
# str/dict methods, macros with caller, filters, tojson, str.format, attribute-vs-key
# lookups, names chosen by the data, raise_exception.
FEATURES = [
    """{%- for m in messages -%}
{{ loop.index }}/{{ loop.length }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %}
{%- if not loop.first %} prev={{ loop.previtem.role }}{% endif %}{% if not loop.last %} next={{ loop.nextitem.role }}{% endif %}
[{{ m.role }}|{{ m.content }}|{{ m.name }}|{{ m.get('content', 'none') }}|{{ m['role'] }}|{{ m.items() | list | length }}]
{{ loop.cycle('a', 'b') }}{{ loop.depth }}{{ loop.revindex0 }}{{ m.keys() | sort | join(',') }}
{%- endfor -%}""",
    """{%- set ns = namespace(sys='', n=0, last_user=-1) -%}
{%- for m in messages -%}
{%- if m.role == 'system' %}{% set ns.sys = ns.sys + (m.content if m.content is string else '') %}{% endif -%}
{%- if m.role == 'user' %}{% set ns.last_user = loop.index0 %}{% endif -%}
{%- set ns.n = ns.n + 1 -%}
{%- endfor -%}
{{ ns.sys | trim }}|{{ ns.n }}|{{ ns.last_user }}
{%- for m in messages -%}
{%- set c = m.content if m.content is string else '' -%}
{%- if '</think>' in c %}{{ c.split('</think>')[-1].lstrip('\\n') }}{% else %}{{ c.strip() }}{% endif -%}
{{ c.startswith('<') }}{{ c.endswith('>') }}{{ c.replace('a', 'b') | upper }}{{ c[:3] }}{{ c | length }}{{ c.count('a') }}
{%- endfor -%}""",
    """{%- macro fmt(call) -%}{{ call.function.name }}({{ call.function.arguments | tojson }}){%- endmacro -%}
{%- macro wrap() -%}<{{ caller() }}>{%- endmacro -%}
{%- if tools %}{% for t in tools %}{{ t | tojson }}{{ t.function.name }}{{ (t.function.parameters or {}).get('type') }}{% endfor %}{% endif -%}
{%- for m in messages -%}
{%- if m.tool_calls is defined and m.tool_calls -%}
{%- for c in m.tool_calls -%}{% call wrap() %}{{ fmt(c) }}{% endcall %}{{ c.id | default('-') }}{%- endfor -%}
{%- endif -%}
{{ m | tojson(sort_keys=true) }}{{ m.reasoning_content | default('', true) }}
{%- endfor -%}
{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='role') | join(',') }}
{{ messages | map(attribute='role') | unique | list | tojson }}
{{ messages | length }}{{ messages[-1].role }}{{ (messages | last).role }}""",
    """{%- for m in messages -%}
{{ '{}:{}'.format(m.role, m.content) }}{{ '%s' % m.role }}{{ '{role}'.format_map(m) }}
{%- if m.role not in ['system', 'user', 'assistant', 'tool'] %}{{ raise_exception('bad role ' + m.role) }}{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt %}<gen>{% endif %}{{ bos_token }}{{ extra | default('d') }}""",
    # names chosen by the data: getitem and the attr filter with the message's role
    """{%- for m in messages -%}{{ m[m.role] | default('-') }}{{ m | attr(m.role) is defined }}{%- endfor -%}""",
    # an escape attempt on one branch only: both environments must fail the same way
    """{%- for m in messages -%}{% if m.role == 'tool' %}{{ m.__class__ }}{% elif m.role == 'update' %}"""
    """{{ m.update }}{% else %}{{ m.content }}{% endif %}{%- endfor -%}""",
]

_text = st.text(alphabet="ab <>/\n{}:thinkrole", max_size=12)
_arguments = st.one_of(
    st.just('{"city": "Paris"}'), st.just("not json"), st.dictionaries(st.sampled_from("xyz"), st.integers(0, 9), max_size=2)
)
_call = st.fixed_dictionaries(
    {"type": st.just("function"), "function": st.fixed_dictionaries({"name": st.sampled_from(["f", "g"]), "arguments": _arguments})},
    optional={"id": st.sampled_from(["c1", "c2"])},
)
_content = st.one_of(
    st.none(), _text, st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]), "text": _text}), max_size=2)
)
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", "items", "update", "format", "__class__", "get", "name"])},
    optional={
        "content": _content, "name": _text, "tool_calls": st.lists(_call, max_size=2),
        "reasoning_content": _text, "items": _text, "update": _text,
    },
)
_tools = st.one_of(st.none(), st.lists(st.fixed_dictionaries({
    "type": st.just("function"),
    "function": st.fixed_dictionaries({"name": st.sampled_from(["f", "g"])},
                                      optional={"parameters": st.just({"type": "object"}), "description": _text}),
}), max_size=2))


def _outcome(template: Any, context: dict[str, Any]) -> tuple[str, str]:
    try:
        return "ok", template.render(context)
    except Exception as exc:  # noqa: BLE001 - the error itself is compared
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("source", [*FEATURES, *(builtin_template(n) for n in BUILTIN_TEMPLATES)])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(_message, max_size=4), tools=_tools, flag=st.booleans(), extra=st.one_of(st.none(), _text))
def test_renders_and_errors_match_the_stock_sandbox(source: str, messages: list, tools: Any, flag: bool, extra: Any) -> None:
    new = ChatTemplate(source)
    stock = STOCK.from_string(source)
    context = {
        "messages": [_normalize(m, new.content_format) for m in messages], "tools": tools or None,
        "add_generation_prompt": flag, "bos_token": "<s>", "eos_token": "</s>", "thinking": flag,
    }
    if extra is not None:
        context["extra"] = extra
    before = copy.deepcopy(context)
    # twice: the second render runs on remembered attribute checks
    assert _outcome(new._template, context) == _outcome(stock, context)
    assert _outcome(new._template, context) == _outcome(stock, context)
    assert context == before


ESCAPES = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ messages[0].__class__ }}",
    "{{ messages[0]['__class__'] }}",
    "{{ messages.__class__.__base__ }}",
    "{{ messages[0] | attr('__class__') }}",
    "{% for m in messages %}{{ loop.__class__ }}{% endfor %}",
    "{% set ns = namespace(a=1) %}{{ ns.__class__ }}",
    "{% set ns = namespace(a=1) %}{{ ns._Namespace__attrs }}",
    "{{ raise_exception.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ 'a'.strip.__self__.__class__ }}",
    "{{ '{0.__class__}'.format('') }}",
    "{{ '{0.__class__}'.format_map({'a': 1}) }}",
    "{% set f = '{0.__class__}'.format %}{{ f('') }}",
    "{{ messages.append({'role': 'x'}) }}",
    "{{ messages.pop() }}",
    "{{ messages[0].update({'role': 'x'}) }}",
    "{{ messages[0].clear() }}",
    "{{ messages[0]['update']({'role': 'x'}) }}",
    "{% set f = messages[0].setdefault %}{{ f('x', 1) }}",
]


@pytest.mark.parametrize("escape", ESCAPES)
def test_escapes_fail_even_after_safe_lookups_were_remembered(escape: str) -> None:
    # Warm every fast path first (dict keys, remembered str/list/loop/namespace
    # attributes, direct calls, str.format), then the escape must still fail.
    warm = (
        "{% set ns = namespace(a=1) %}{% for m in messages %}{{ loop.first }}{{ m.role }}{{ m.get('role') }}"
        "{{ m.items() | list | length }}{{ m.content.strip() }}{{ ns.a }}{{ '{}'.format(m.role) }}{% endfor %}"
    )
    messages = [{"role": "user", "content": " hi "}]
    for _ in range(2):
        assert ChatTemplate(warm).render(messages) == "Trueuseruser2hi1user"
    with pytest.raises(ChatTemplateError):
        ChatTemplate(escape).render(messages)
    assert messages == [{"role": "user", "content": " hi "}]


def test_dict_attributes_win_over_keys_as_in_stock_jinja() -> None:
    t = ChatTemplate("{{ m.get('items') }}|{{ m.items() | list | length }}|{{ m.role }}|{{ m.missing is defined }}")
    assert t.render([], m={"items": "x", "role": "r"}) == "x|2|r|False"
    with pytest.raises(ChatTemplateError, match="update"):
        ChatTemplate("{{ m.update }}").render([], m={"update": "shadowed"})


def test_remembered_checks_are_per_type() -> None:
    env = ChatSandbox()
    assert env.getattr("abc", "upper")() == "ABC"
    assert env.getattr([1], "index")(1) == 0
    with pytest.raises(SecurityError):  # the same name on a mutable type stays unsafe
        env.getattr([1], "append")
    assert env.getattr({"append": 1}, "append") == 1  # a dict key, not a list method
    # str.format is never remembered (even once asked about directly): each access
    # gets the sandboxed formatter
    assert env.is_safe_attribute("", "format", "".format)
    for _ in range(2):
        fmt = env.getattr("{0.__class__}", "format")
        assert fmt is not str.format
        with pytest.raises(SecurityError):
            fmt("")


def test_globals_are_the_environments() -> None:
    t = ChatTemplate("{{ strftime_now('%Y') | length }}{{ range(3) | list | tojson }}{{ namespace(a=2).a }}")
    assert t.render([]) == "4[0, 1, 2]2"
    assert json.loads(ChatTemplate("{{ x | tojson }}").render([], x={"a": "<"})) == {"a": "<"}
