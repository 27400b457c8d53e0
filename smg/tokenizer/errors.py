"""The one exception type of the tokenizer package.

Loading failures name the file that is missing or unreadable; template failures carry the
template's own message (``raise_exception("...")``) so a gateway can return it as a 400.
"""

from __future__ import annotations

__all__ = ["ChatTemplateError", "TokenizerError"]


class TokenizerError(Exception):
    """A tokenizer or chat template cannot be loaded or used."""


class ChatTemplateError(TokenizerError):
    """A chat template failed to render these messages (bad input, not a bad server)."""
