"""Byte-level BPE encoding that releases the GIL: ``BpeEncoder``.

``BpeEncoder.from_tokenizer_json`` reads a HF tokenizer.json and decides whether the
kernel can reproduce it exactly: a BPE model over ByteLevel bytes, an identity or NFC
normalizer, and a pre-tokenizer made of ``Split`` regexes this module knows (compared
as strings against the GPT-2, cl100k/Llama-3, o200k, Qwen2/3, Qwen3.5 and DeepSeek V3
patterns).
Anything else is encoded by ``tokenizers`` itself; that is logged once on the
``smg.bpe`` logger and reported by ``smg._fast.implementation()["bpe"]``.
``BpeEncoder.from_tiktoken`` does the same for a tiktoken vocabulary, falling back to
``tiktoken`` for patterns it does not know.

``encode`` means ``tokenizers``' ``encode(text, add_special_tokens=False).ids`` (no
post-processor), and tiktoken's ``encode(text, allowed_special="all")``.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import logging
import os
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from smg._fast import _note, load
from smg._fast.bpe_py import ADDED_LSTRIP, ADDED_NORMALIZED, ADDED_RSTRIP, ADDED_SPECIAL

_impl = load("bpe")
BpeCore = _impl.BpeCore
IMPLEMENTATION = "python" if _impl.__name__.endswith("_py") else "cython"

__all__ = ["IMPLEMENTATION", "KNOWN_PATTERNS", "BpeCore", "BpeEncoder", "byte_level_alphabet", "pattern_split"]

log = logging.getLogger("smg.bpe")

KNOWN_PATTERNS: dict[str, str] = {
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""": "gpt2",
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""": "cl100k",
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""": "qwen",
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""": "qwen35",
    r"""\p{N}{1,3}""": "digits3",
    "[一-龥぀-ゟ゠-ヿ]+": "cjk",
    "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ): "o200k",
    r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""": "deepseek",
}
"""Pre-tokenizer regexes the kernel implements, by their exact text (see ``pattern_split``)."""


def pattern_split(pattern: str) -> str | None:
    """The matcher name for a regex, or None. A literal CR or LF in the pattern means the
    same as its escape (DeepSeek's tokenizer.json spells them literally)."""
    return KNOWN_PATTERNS.get(pattern.replace("\r", "\\r").replace("\n", "\\n"))


_INLINE_CHARS = 2048  # encode_async runs shorter texts inline: a thread hop costs more


def byte_level_alphabet() -> dict[str, int]:
    """GPT-2's ByteLevel map, inverted: the printable character that stands for each byte."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = {b: b for b in keep}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return {chr(c): b for b, c in chars.items()}


class _Unsupported(Exception):
    pass


class _ToBytes(dict):  # type: ignore[type-arg]
    """A str.translate table: ByteLevel characters to chr(byte), anything else to U+FFFE."""

    def __missing__(self, key: int) -> str:
        return "\ufffe"


def _byte_vocab(vocab: dict[str, int]) -> dict[bytes, int]:
    """The vocabulary by token bytes. Entries that are not ByteLevel text (added tokens'
    contents) are left out: merges never reach them. One translate over all tokens."""
    table = _ToBytes({ord(ch): chr(b) for ch, b in byte_level_alphabet().items()})
    table[0xFFFF] = "\uffff"  # the separator
    texts = "\uffff".join(vocab).translate(table).split("\uffff")
    if len(texts) != len(vocab):  # a token holds the separator itself: go one by one
        texts = ["\ufffe" if "\uffff" in t else t.translate(table) for t in vocab]
    return {t.encode("latin-1"): tid for t, tid in zip(texts, vocab.values()) if "\ufffe" not in t}


def _splits_of(pre: dict[str, Any] | None) -> list[str]:
    """The matcher names for a pre_tokenizer, or _Unsupported."""
    if pre is None:
        raise _Unsupported("no pre_tokenizer")
    if pre.get("type") == "ByteLevel":
        if pre.get("add_prefix_space") or not pre.get("use_regex", True):
            raise _Unsupported(f"ByteLevel pre-tokenizer {pre!r}")
        return ["gpt2"]
    if pre.get("type") != "Sequence":
        raise _Unsupported(f"pre_tokenizer type {pre.get('type')!r}")
    steps = pre.get("pretokenizers") or []
    *splits, last = steps or [{}]
    if last.get("type") != "ByteLevel" or last.get("add_prefix_space") or last.get("use_regex", True):
        raise _Unsupported("pre_tokenizer Sequence must end in ByteLevel(use_regex=false)")
    names = []
    for step in splits:
        pattern = (step.get("pattern") or {}).get("Regex")
        if step.get("type") != "Split" or step.get("behavior") != "Isolated" or step.get("invert"):
            raise _Unsupported(f"pre-tokenizer step {step!r}")
        name = pattern_split(pattern) if isinstance(pattern, str) else None
        if name is None:
            raise _Unsupported(f"Split regex {pattern!r}")
        names.append(name)
    if not names:
        raise _Unsupported("no Split in the pre_tokenizer")
    return names


def _normalizer_of(norm: dict[str, Any] | None) -> bool:
    """True for NFC, False for the identity, else _Unsupported."""
    if norm is None or (norm.get("type") == "Sequence" and not norm.get("normalizers")):
        return False
    if norm.get("type") == "NFC":
        return True
    raise _Unsupported(f"normalizer {norm!r}")


def _core_args(data: dict[str, Any]) -> tuple[tuple[Any, ...], bool]:
    """``BpeCore`` arguments and the NFC flag for a tokenizer.json, or _Unsupported."""
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        raise _Unsupported(f"model type {model.get('type')!r}")
    for key in ("dropout", "continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            raise _Unsupported(f"BPE {key}={model[key]!r}")
    if model.get("byte_fallback"):
        raise _Unsupported("BPE byte_fallback")
    if data.get("truncation") or data.get("padding"):
        raise _Unsupported("truncation/padding")
    nfc = _normalizer_of(data.get("normalizer"))
    splits = _splits_of(data.get("pre_tokenizer"))
    vocab = _byte_vocab(model["vocab"])
    by_text = model["vocab"]
    pairs = [m.split(" ", 1) if isinstance(m, str) else m for m in model.get("merges") or []]
    merges = [(by_text[a], by_text[b], by_text[a + b]) for a, b in pairs]
    added = []
    for tok in data.get("added_tokens") or []:
        if tok.get("single_word"):
            raise _Unsupported(f"single_word added token {tok['content']!r}")
        flags = (
            (ADDED_SPECIAL if tok.get("special") else 0)
            | (ADDED_NORMALIZED if tok.get("normalized", not tok.get("special")) else 0)
            | (ADDED_LSTRIP if tok.get("lstrip") else 0)
            | (ADDED_RSTRIP if tok.get("rstrip") else 0)
        )
        if nfc and flags & ADDED_NORMALIZED and unicodedata.normalize("NFC", tok["content"]) != tok["content"]:
            raise _Unsupported(f"added token {tok['content']!r} changes under NFC")
        added.append((tok["content"], tok["id"], flags))
    return (vocab, merges, added, tuple(splits), bool(model.get("ignore_merges"))), nfc


class BpeEncoder:
    """Encode text to token ids with the compiled kernel, or with the library it mirrors.

    ``supported`` is False when the kernel cannot reproduce the tokenizer exactly; then
    every call goes to ``tokenizers`` (or ``tiktoken``). ``encode`` releases the GIL for
    the whole of its work, so other Python threads keep running while it tokenizes.
    """

    def __init__(
        self,
        core: Any | None,
        fallback: Callable[[str, bool], list[int]] | None,
        nfc: bool = False,
    ) -> None:
        self._core = core
        self._fallback = fallback
        self._nfc = nfc
        self.supported = core is not None

    @classmethod
    def from_tokenizer_json(cls, path_or_str: str | os.PathLike[str]) -> BpeEncoder:
        """Load a tokenizer.json from a path or from its JSON text."""
        text = str(path_or_str)
        if not text.lstrip().startswith("{"):
            with open(text, encoding="utf-8") as f:
                text = f.read()
        data = orjson.loads(text)
        if not isinstance(data, dict) or "model" not in data:
            raise ValueError("not a tokenizer.json: no 'model'")
        fallback = _tokenizers_fallback(text)
        try:
            args, nfc = _core_args(data)
        except _Unsupported as why:
            _report_fallback("tokenizers", str(why))
            return cls(None, fallback)
        _note("bpe", IMPLEMENTATION)
        return cls(BpeCore(*args), fallback if nfc else None, nfc)  # non-NFC text goes to tokenizers

    @classmethod
    def from_tiktoken(cls, path: str | os.PathLike[str], pattern: str, special_tokens: dict[str, int]) -> BpeEncoder:
        """Load a ``.tiktoken`` vocabulary (base64 token, rank per line)."""
        ranks: dict[bytes, int] = {}
        with open(path, "rb") as f:
            for line in f:
                if line.strip():
                    token, rank = line.split()
                    ranks[base64.b64decode(token)] = int(rank)
        split = pattern_split(pattern)
        if split is None:
            _report_fallback("tiktoken", f"pattern {pattern!r}")
            return cls(None, _tiktoken_fallback(ranks, pattern, special_tokens))
        added = [(text, tid, ADDED_SPECIAL) for text, tid in special_tokens.items()]
        _note("bpe", IMPLEMENTATION)
        return cls(BpeCore(ranks, None, added, (split,), True), None)

    def encode(self, text: str, allow_special: bool = True) -> list[int]:
        """Token ids for ``text``; added/special tokens in it are recognised unless
        ``allow_special`` is False (then special ones are encoded as plain text)."""
        if self._core is None or (self._nfc and not unicodedata.is_normalized("NFC", text)):
            assert self._fallback is not None
            return self._fallback(text, allow_special)
        return self._core.encode(text, allow_special)

    def encode_batch(self, texts: Sequence[str], allow_special: bool = True) -> list[list[int]]:
        """``encode`` for many texts in one call (one GIL release for all of them)."""
        if self._core is None or self._nfc:
            return [self.encode(t, allow_special) for t in texts]
        return self._core.encode_batch(list(texts), allow_special)

    async def encode_async(
        self,
        text: str,
        executor: concurrent.futures.Executor | None = None,
        allow_special: bool = True,
    ) -> list[int]:
        """``encode`` in a worker thread, so the event loop keeps serving meanwhile.

        Short texts (under 2048 characters) are encoded inline: that takes a few
        microseconds, less than the hop to a thread and back.
        """
        if len(text) < _INLINE_CHARS and self._core is not None:
            return self.encode(text, allow_special)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, self.encode, text, allow_special)


_reported: set[str] = set()


def _report_fallback(library: str, why: str) -> None:
    _note("bpe", library)
    if why not in _reported:
        _reported.add(why)
        log.warning("smg.bpe: using %s for this tokenizer (unsupported: %s)", library, why)


def _tokenizers_fallback(text: str) -> Callable[[str, bool], list[int]]:
    """``tokenizers`` encode, built on first use (allow_special False = encode_special_tokens)."""
    made: dict[bool, Any] = {}

    def encode(s: str, allow_special: bool) -> list[int]:
        tok = made.get(allow_special)
        if tok is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_str(text)
            tok.encode_special_tokens = not allow_special
            made[allow_special] = tok
        return tok.encode(s, add_special_tokens=False).ids

    return encode


def _tiktoken_fallback(
    ranks: dict[bytes, int], pattern: str, special_tokens: dict[str, int]
) -> Callable[[str, bool], list[int]]:
    import tiktoken

    enc = tiktoken.Encoding("smg", pat_str=pattern, mergeable_ranks=ranks, special_tokens=special_tokens)

    def encode(s: str, allow_special: bool) -> list[int]:
        if allow_special:
            return enc.encode(s, allowed_special="all")
        return enc.encode_ordinary(s)

    return encode
