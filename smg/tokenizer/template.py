"""Chat templates: HF-style Jinja templates compiled once in a sandbox.

The environment matches what HF ``transformers`` gives templates: ``trim_blocks`` and
``lstrip_blocks``, the ``loopcontrols`` extension, ``{% generation %}`` blocks, the
``raise_exception`` and ``strftime_now`` globals and a ``tojson`` filter that does not
HTML-escape. It is an ``ImmutableSandboxedEnvironment`` (``smg.tokenizer.sandbox``, with
cheap checks for plain data): templates cannot reach Python internals (``__class__``,
``__globals__``) or mutate the lists and dicts they are given.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import jinja2
from jinja2 import meta, nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

from smg.tokenizer.errors import ChatTemplateError, TokenizerError
from smg.tokenizer.sandbox import ChatSandbox

__all__ = ["ChatTemplate", "ContentFormat"]

ContentFormat = Literal["string", "openai"]

# Template variables that switch reasoning on or off, by model family: Qwen3, GLM and
# Nemotron read enable_thinking; DeepSeek V3.1 and Kimi read thinking.
_THINKING_KEYS = ("enable_thinking", "thinking")


class _TemplateRaised(Exception):
    """Raised by ``raise_exception`` inside a template; carries the template's message."""


def _raise_exception(message: str) -> None:
    raise _TemplateRaised(str(message))


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: Sequence[str] | None = None,
    sort_keys: bool = False,
) -> str:
    # HF semantics: plain json.dumps (Jinja's own tojson HTML-escapes, which templates
    # written for transformers do not expect).
    return json.dumps(
        value,
        ensure_ascii=ensure_ascii,
        indent=indent,
        separators=tuple(separators) if separators is not None else None,
        sort_keys=sort_keys,
    )


class _GenerationBlock(Extension):
    """``{% generation %}...{% endgeneration %}`` (HF assistant masks): render the body."""

    tags = {"generation"}

    def parse(self, parser: Any) -> list[nodes.Node]:
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _environment(sandbox: type[ImmutableSandboxedEnvironment] = ChatSandbox) -> ImmutableSandboxedEnvironment:
    env = sandbox(
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        extensions=["jinja2.ext.loopcontrols", _GenerationBlock],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


_ENV = _environment()


def _is_content_access(node: nodes.Node) -> bool:
    while isinstance(node, nodes.Filter) and node.node is not None:
        node = node.node
    if isinstance(node, nodes.Getattr):
        return node.attr == "content"
    if isinstance(node, nodes.Getitem):
        return isinstance(node.arg, nodes.Const) and node.arg.value == "content"
    return False


def _detect_content_format(ast: nodes.Template) -> ContentFormat:
    """"openai" when the template loops over a message's content (a list of parts)."""
    content_vars = {
        target.name
        for assign in ast.find_all(nodes.Assign)
        if isinstance(target := assign.target, nodes.Name) and _is_content_access(assign.node)
    }
    for loop in ast.find_all(nodes.For):
        it = loop.iter
        while isinstance(it, nodes.Filter) and it.node is not None:
            it = it.node
        if _is_content_access(it) or (isinstance(it, nodes.Name) and it.name in content_vars):
            return "openai"
    return "string"


def _flatten_content(content: list[Any]) -> str:
    """OpenAI content parts -> one string (text parts joined by newlines)."""
    texts = [
        part.get("text", "")
        for part in content
        if isinstance(part, Mapping) and part.get("type", "text") == "text"
    ]
    return "\n".join(texts)


def _parsed_arguments(call: Any) -> Any:
    """A tool call whose ``function.arguments`` JSON string is parsed to an object."""
    fn = call.get("function") if isinstance(call, Mapping) else None
    args = fn.get("arguments") if isinstance(fn, Mapping) else None
    if not isinstance(args, str):
        return call
    try:
        parsed = json.loads(args)
    except ValueError:
        return call
    if not isinstance(parsed, dict):
        return call
    return {**call, "function": {**fn, "arguments": parsed}}


def _normalize(message: Any, content_format: ContentFormat) -> Any:
    """The message as templates expect it (a new dict when anything changes):
    content as a string or as a list of parts, per the template's format, and tool-call
    arguments as objects rather than the JSON strings the OpenAI API carries."""
    if type(message) is not dict and not isinstance(message, Mapping):  # no ABC check for dicts
        return message
    out: dict[str, Any] | None = None
    content = message.get("content")
    if content_format == "string" and isinstance(content, list):
        out = {**message, "content": _flatten_content(content)}
    elif content_format == "openai" and isinstance(content, str):
        out = {**message, "content": [{"type": "text", "text": content}]}
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        parsed = [_parsed_arguments(c) for c in calls]
        if any(p is not c for p, c in zip(parsed, calls)):
            out = {**(out or message), "tool_calls": parsed}
    return message if out is None else out


def _final_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        for part in reversed(content):
            if isinstance(part, Mapping) and "text" in part:
                return str(part["text"])
    raise ChatTemplateError("continue_final_message: the final message has no text content")


def _cut_after_final(rendered: str, final: str) -> str:
    # As HF transformers does: keep the text up to the end of the final message's content
    # and drop what the template wrote after it (end-of-turn tokens).
    stripped = final.strip()
    if stripped not in rendered:
        raise ChatTemplateError(
            "continue_final_message: the final message does not appear in the rendered "
            "chat (the template rewrites message content)"
        )
    at = rendered.rindex(stripped)
    if rendered[at : at + len(final.lstrip())] == final.lstrip():
        return rendered[: at + len(final.lstrip())]
    return rendered[: at + len(stripped)]


class ChatTemplate:
    """A compiled chat template.

    ``ChatTemplate(source)`` compiles ``source`` once (a ``TokenizerError`` names the
    syntax error); ``render`` may be called from any thread. ``content_format`` is
    "openai" when the template iterates over message content parts, else "string" (list
    content is then joined to text before rendering); ``variables`` are the context
    names the template reads and ``thinking_key`` the one that toggles reasoning
    ("enable_thinking" or "thinking"), if any.
    """

    __slots__ = ("source", "content_format", "variables", "thinking_key", "_template")

    def __init__(self, source: str) -> None:
        try:
            ast = _ENV.parse(source)
            self._template = _ENV.from_string(ast)
        except jinja2.TemplateSyntaxError as exc:
            raise TokenizerError(
                f"chat template does not compile: {exc.message} (line {exc.lineno})"
            ) from exc
        self.source = source
        self.content_format: ContentFormat = _detect_content_format(ast)
        # Variables the template reads from its context (messages, tools, enable_thinking...).
        self.variables: frozenset[str] = frozenset(meta.find_undeclared_variables(ast))
        self.thinking_key: str | None = next(
            (k for k in _THINKING_KEYS if k in self.variables), None
        )

    def __repr__(self) -> str:
        return f"ChatTemplate({len(self.source)} chars, content_format={self.content_format!r})"

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        bos_token: str | None = None,
        eos_token: str | None = None,
        **kwargs: Any,
    ) -> str:
        """Render ``messages`` to the prompt text.

        Messages are normalized first (new dicts, the caller's are not changed): list
        content is joined to a string for "string" templates, string content becomes one
        text part for "openai" templates, and tool-call ``arguments`` given as a JSON
        object string are parsed (templates apply ``tojson`` to them).
        ``continue_final_message`` renders without a generation prompt (whatever
        ``add_generation_prompt`` says) and cuts the text right after the final message's
        content, so generation continues that message. Extra keyword arguments
        (``enable_thinking``, ``thinking``, ``documents``...) are template variables.
        A template's ``raise_exception(msg)`` and any error while rendering become a
        ``ChatTemplateError``.
        """
        if continue_final_message:
            if not messages:
                raise ChatTemplateError("continue_final_message needs at least one message")
            add_generation_prompt = False
        final = messages[-1] if continue_final_message else None
        messages = [_normalize(m, self.content_format) for m in messages]
        context = {
            "bos_token": bos_token or "",
            "eos_token": eos_token or "",
            **kwargs,
            "messages": messages,
            "tools": tools if tools else None,
            "add_generation_prompt": add_generation_prompt,
        }
        template = self._template
        try:
            # Template.render minus its copy of the context and its traceback rewriting
            # (errors are reported by message only)
            rendered = "".join(template.root_render_func(template.new_context(context)))
        except _TemplateRaised as exc:
            raise ChatTemplateError(str(exc)) from None
        except jinja2.TemplateError as exc:
            raise ChatTemplateError(f"chat template error: {exc}") from None
        except Exception as exc:  # template code can raise anything (TypeError, ...)
            raise ChatTemplateError(f"chat template error: {type(exc).__name__}: {exc}") from None
        if final is not None:
            rendered = _cut_after_final(rendered, _final_text(final))
        return rendered
