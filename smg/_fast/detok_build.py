"""Building a detokenizer table from a tokenizer (shared by ``detok_py`` and ``detok_c``).

A table says, for every token id, which bytes the token contributes to decoded text, which
ids are special, and how the tokenizer's decoder treats the start of a sequence. It is
built once per tokenizer; both implementations pack the same :class:`TableSpec`.

Supported decoders of a HF ``tokenizers.Tokenizer`` (everything else is a *fallback*: the
detokenizer then runs the tokenizer's own decoder, see :class:`FallbackDetokenizer`):

- ``ByteLevel`` (alone, or in a ``Sequence`` with ``Fuse``): each char of a token maps back
  through GPT-2's byte map; a token with any char outside the map is taken as plain UTF-8
  (that is what the decoder does; it applies to added tokens too).
- SentencePiece pieces: a ``Sequence`` of ``Replace("▁", " ")``, ``ByteFallback``, ``Fuse``,
  ``Metaspace`` and a final ``Strip(" ", 1, 0)`` after ``Fuse`` (the Llama "legacy" decoder), or
  ``Metaspace`` alone. ``<0xNN>`` tokens become byte NN; ``▁`` becomes a space, except in the
  first token of a sequence under ``Metaspace`` (prepend_scheme first/always), where every
  ``▁`` is dropped; ``Strip`` drops the first output byte of the sequence if it is a space.

Known, documented differences from ``tokenizers.decode`` (they only arise for byte runs that
are not valid UTF-8): ``ByteFallback`` replaces *every* byte token of an invalid run (and any
valid chars in it) by U+FFFD, one per token; the table emits the run's valid chars and one
U+FFFD per maximal invalid subpart (Python's ``errors="replace"`` rule), which streaming can
do with at most 3 pending bytes. A byte run that spells ``▁`` stays ``▁``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["FallbackDetokenizer", "TableSpec", "spec_from_hf", "spec_from_tiktoken"]

log = logging.getLogger("smg._fast.detok")

_SPACE_MARK = "\u2581"  # ▁


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable char map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = list(bs)
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


_CHAR_TO_BYTE = {c: b for b, c in _bytes_to_unicode().items()}


@dataclass(frozen=True)
class TableSpec:
    """Everything a detokenizer needs about one tokenizer.

    ``pieces[i]`` is token i's bytes (None: no such id, dropped like ``tokenizers`` does);
    ``first_pieces`` maps ids whose bytes differ when they are the first token of a sequence;
    ``strip_first_space``: drop the sequence's first output byte if it is a space.
    ``fallback`` is the tokenizer itself when its decoder is not expressible as a table.
    """

    kind: str
    pieces: Sequence[bytes | None]
    special: frozenset[int]
    first_pieces: dict[int, bytes]
    strip_first_space: bool = False
    fallback: Any = None
    reason: str = ""


def _bytelevel_piece(token: str) -> bytes:
    try:
        return bytes(_CHAR_TO_BYTE[c] for c in token)
    except KeyError:
        return token.encode("utf-8")


def _byte_token(token: str) -> int | None:
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        try:
            return int(token[3:5], 16)
        except ValueError:
            return None
    return None


def _sentencepiece_plan(steps: list[dict]) -> tuple[str, bool, bool, bool] | str:
    """Check a decoder sequence; returns (kind, byte_fallback, metaspace_first, strip) or why not."""
    byte_fallback = metaspace_first = strip = fused = replaced = False
    for i, step in enumerate(steps):
        t = step.get("type")
        if t == "ByteFallback":
            byte_fallback = True
        elif t == "Fuse":
            fused = True
        elif t == "Replace":
            pattern = step.get("pattern", {})
            if pattern.get("String") != _SPACE_MARK or step.get("content") != " ":
                return f"Replace({pattern}, {step.get('content')!r})"
            replaced = True
        elif t == "Metaspace":
            if step.get("replacement", _SPACE_MARK) != _SPACE_MARK or fused:
                return "Metaspace with another replacement or after Fuse"
            scheme = step.get("prepend_scheme", "always" if step.get("add_prefix_space", True) else "never")
            metaspace_first = scheme != "never"
            replaced = True
        elif t == "Strip":
            if (step.get("content"), step.get("start"), step.get("stop")) != (" ", 1, 0):
                return f"Strip({step.get('content')!r}, {step.get('start')}, {step.get('stop')})"
            if not fused or i != len(steps) - 1:
                return "Strip before Fuse"
            strip = True
        else:
            return f"decoder {t}"
    if not replaced:
        return "no ▁ replacement"
    return ("metaspace" if metaspace_first else "sentencepiece", byte_fallback, metaspace_first, strip)


def spec_from_hf(tokenizer: Any) -> TableSpec:
    """Build the table for a HF ``tokenizers.Tokenizer`` (a fallback spec if unsupported).

    A ``transformers`` fast tokenizer is accepted too (its ``backend_tokenizer`` is used).
    """
    tokenizer = getattr(tokenizer, "backend_tokenizer", tokenizer)
    config = json.loads(tokenizer.to_str())
    decoder = config.get("decoder")
    steps = [] if decoder is None else decoder.get("decoders", [decoder]) if decoder["type"] == "Sequence" else [decoder]
    n = tokenizer.get_vocab_size(with_added_tokens=True)
    added = tokenizer.get_added_tokens_decoder()
    n = max([n, *(i + 1 for i in added)])
    special = frozenset(i for i, tok in added.items() if tok.special)
    tokens = [tokenizer.id_to_token(i) for i in range(n)]
    types = [s.get("type") for s in steps]
    if types and all(t in ("ByteLevel", "Fuse") for t in types) and "ByteLevel" in types:
        pieces = [None if t is None else _bytelevel_piece(t) for t in tokens]
        return TableSpec("bytelevel", pieces, special, {})
    plan = _sentencepiece_plan(steps) if steps else "no decoder"
    if isinstance(plan, str):
        log.warning("detok: %s is not table-expressible; using the tokenizer's own decoder", plan)
        return TableSpec("fallback", [], special, {}, fallback=tokenizer, reason=plan)
    kind, byte_fallback, metaspace_first, strip = plan
    pieces: list[bytes | None] = []
    first: dict[int, bytes] = {}
    for i, t in enumerate(tokens):
        if t is None:
            pieces.append(None)
            continue
        b = _byte_token(t) if byte_fallback else None
        if b is not None:
            pieces.append(bytes((b,)))
            continue
        pieces.append(t.replace(_SPACE_MARK, " ").encode("utf-8"))
        if metaspace_first and _SPACE_MARK in t:
            first[i] = t.replace(_SPACE_MARK, "").encode("utf-8")
    return TableSpec(kind, pieces, special, first, strip_first_space=strip)


def spec_from_tiktoken(encoding: Any) -> TableSpec:
    """Build the table for a ``tiktoken.Encoding`` (mergeable ranks plus special tokens)."""
    ranks: dict[bytes, int] | None = getattr(encoding, "_mergeable_ranks", None)
    specials = {s: encoding.encode_single_token(s) for s in encoding.special_tokens_set}
    n = max([encoding.n_vocab, *(i + 1 for i in specials.values())])
    pieces: list[bytes | None] = [None] * n
    if ranks is not None:
        for b, i in ranks.items():
            pieces[i] = b
    else:  # public but slower path
        for i in range(n):
            try:
                pieces[i] = encoding.decode_single_token_bytes(i)
            except KeyError:
                pass
    for s, i in specials.items():
        pieces[i] = s.encode("utf-8")
    return TableSpec("tiktoken", pieces, frozenset(specials.values()), {})


class FallbackDetokenizer:
    """Incremental decoding through the tokenizer's own ``decode`` (decoders the table can't express).

    Keeps the ids since the last emitted boundary (prefix/read offsets as vLLM does); a step
    emits the new text once it no longer ends in U+FFFD; ``flush`` emits what is left. Slow
    (two decodes per token) but exact for decoders that need neighbouring tokens.
    """

    def __init__(self, tokenizer: Any, skip_special_tokens: bool, prompt_tail: Sequence[int]) -> None:
        self._tok = tokenizer
        self._skip = skip_special_tokens
        self._ids: list[int] = list(prompt_tail)[-6:]
        self._prefix = 0
        self._read = len(self._ids)

    def _decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=self._skip)

    def step_many(self, token_ids: Sequence[int]) -> str:
        out = []
        for t in token_ids:
            self._ids.append(int(t))
            prefix_text = self._decode(self._ids[self._prefix : self._read])
            new_text = self._decode(self._ids[self._prefix :])
            if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
                out.append(new_text[len(prefix_text) :])
                self._prefix, self._read = self._read, len(self._ids)
                if self._prefix > 64:  # keep the window short
                    drop = self._prefix
                    del self._ids[:drop]
                    self._prefix -= drop
                    self._read -= drop
        return "".join(out)

    def flush(self) -> str:
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        new_text = self._decode(self._ids[self._prefix :])
        self._ids = self._ids[len(self._ids) :]
        self._prefix = self._read = 0
        return new_text[len(prefix_text) :]
