"""The Tokenizer interface shared by the HF ``tokenizers`` and tiktoken backends.

A Tokenizer is built by ``smg.tokenizer.load_tokenizer`` and is immutable afterwards;
every method may be called from any thread. ``encode`` never adds a BOS unless asked
(``add_special_tokens=True``): prompts are templated text that already carries it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from smg.tokenizer.errors import ChatTemplateError, TokenizerError

if TYPE_CHECKING:
    import tiktoken
    import tokenizers

    from smg.tokenizer.template import ChatTemplate

__all__ = ["Tokenizer"]


class Tokenizer:
    """A loaded tokenizer: vocabulary facts, encode/decode and the chat template.

    Attributes: ``name`` (where it came from), ``vocab_size`` (ids are below it),
    ``eos_token_ids`` (hidden stop tokens), ``bos_token``/``eos_token`` (strings the
    template receives), ``special_token_ids`` (dropped by ``skip_special_tokens``),
    ``hf``/``tiktoken`` (the backend object; one of them is None), ``chat_template``
    (None when the model ships none), ``chat_template_origin`` (the file or argument it
    came from), ``named_chat_templates`` (tokenizer_config.json lists of templates) and
    ``files`` (name -> bytes of a directory that loads back to this tokenizer; the
    GetTokenizer rpc zips it).

    ``encode`` uses the GIL-free ``smg._fast.bpe`` kernel when it is built and reproduces
    this tokenizer exactly, else the backend library.
    """

    hf: tokenizers.Tokenizer | None = None
    tiktoken: tiktoken.Encoding | None = None
    fast_encoder: Any | None = None
    """The ``smg._fast.bpe.BpeEncoder`` that ``encode`` uses, when the kernel applies."""
    encode_releases_gil: bool = True
    """Whether ``encode`` of a long text lets other threads run, so a worker thread keeps
    the event loop free: true for all backends (the bpe kernel and tiktoken release the
    GIL; HF tokenizers is called through its GIL-free ``encode_batch`` for long texts)."""

    def __init__(
        self,
        *,
        name: str,
        vocab_size: int,
        eos_token_ids: Sequence[int],
        bos_token: str | None,
        eos_token: str | None,
        special_token_ids: frozenset[int],
        chat_template: ChatTemplate | None,
        chat_template_origin: str | None,
        named_chat_templates: Mapping[str, ChatTemplate],
        files: Mapping[str, bytes],
    ) -> None:
        self.name = name
        self.vocab_size = vocab_size
        self.eos_token_ids = tuple(eos_token_ids)
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.special_token_ids = special_token_ids
        self.chat_template = chat_template
        self.chat_template_origin = chat_template_origin
        self.named_chat_templates = dict(named_chat_templates)
        self.files = dict(files)

    def __repr__(self) -> str:
        backend = "tiktoken" if self.tiktoken is not None else "hf"
        return (
            f"<{type(self).__name__} {self.name!r} backend={backend} vocab={self.vocab_size} "
            f"eos={list(self.eos_token_ids)} template={self.chat_template_origin!r}>"
        )

    # -- backend operations (implemented by the subclasses) --------------------------

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        raise NotImplementedError

    def encode_batch(
        self, texts: Sequence[str], add_special_tokens: bool = False
    ) -> list[list[int]]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        raise NotImplementedError

    def token_to_id(self, token: str) -> int | None:
        raise NotImplementedError

    def id_to_token(self, token_id: int) -> str | None:
        raise NotImplementedError

    def token_bytes(self, token_id: int) -> bytes | None:
        """The raw bytes token ``token_id`` stands for (None for an unknown id)."""
        raise NotImplementedError

    def atomic_tokens(self) -> dict[str, int]:
        """Token strings that are always cut out of the text whole, mapped to their ids.

        The text before and after such a string is tokenized independently, which is what
        makes a prefix cache keyed at their positions exact.
        """
        raise NotImplementedError

    # -- chat template ----------------------------------------------------------------

    def require_chat_template(self) -> ChatTemplate:
        """The chat template, or a TokenizerError naming the files that could hold one."""
        if self.chat_template is None:
            raise TokenizerError(
                f"{self.name}: no chat template (looked for --chat-template, "
                "chat_template.json, *.jinja and tokenizer_config.json's chat_template)"
            )
        return self.chat_template

    def apply_chat_template(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        chat_template_kwargs: Mapping[str, Any] | None = None,
        **template_kwargs: Any,
    ) -> str:
        """Render ``messages`` with the chat template (see ``ChatTemplate.render``).

        ``chat_template_kwargs`` is the client's mapping (an OpenAI request field): it is
        merged into the template variables, and a key that would replace one of the
        arguments above (``messages``, ``tools``...) is a ChatTemplateError.
        With tools, a named ``tool_use`` template is preferred when the model has one.
        """
        template = self.require_chat_template()
        if tools and "tool_use" in self.named_chat_templates:
            template = self.named_chat_templates["tool_use"]
        if chat_template_kwargs:
            reserved = _RESERVED_TEMPLATE_KEYS.intersection(chat_template_kwargs)
            if reserved:
                raise ChatTemplateError(
                    f"chat_template_kwargs may not set {', '.join(sorted(reserved))}"
                )
            template_kwargs = {**chat_template_kwargs, **template_kwargs}
        template_kwargs.setdefault("bos_token", self.bos_token)
        template_kwargs.setdefault("eos_token", self.eos_token)
        return template.render(
            messages,
            tools=tools,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            **template_kwargs,
        )


_RESERVED_TEMPLATE_KEYS = frozenset(
    {"messages", "tools", "add_generation_prompt", "continue_final_message", "chat_template_kwargs"}
)
