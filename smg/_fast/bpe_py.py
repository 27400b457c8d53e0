"""Byte-level BPE encoding in pure Python: the specification of ``bpe_c``.

``BpeCore`` encodes text the way HF ``tokenizers`` (and ``tiktoken``) do for byte-level
BPE vocabularies: added tokens are split out first, the remaining text is cut into
words by hand-written matchers for the known pre-tokenizer regexes, and each word's UTF-8
bytes are merged by rank. The compiled twin does the same on UTF-8 bytes; this one works
on code points, which makes the regex semantics easier to read.

Each matcher ``m(s, p, end) -> int`` answers the question a backtracking regex engine
answers at position ``p`` of the piece ``s[:end]``: the end of the match that the
pattern's leftmost-first alternation finds there, or -1. ``_split`` then cuts the piece
the way a ``Split(behavior="Isolated")`` pre-tokenizer does: matches and the gaps between
them both become pieces.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

__all__ = [
    "ADDED_LSTRIP",
    "ADDED_NORMALIZED",
    "ADDED_RSTRIP",
    "ADDED_SPECIAL",
    "SPLITS",
    "BpeCore",
    "char_class",
]

# Character classes: one bit each; a code point has at most one category bit plus SPACE.
LU = 1  # Lu, Lt
LL = 2  # Ll
LO = 4  # Lm, Lo
MARK = 8  # M*
NUM = 16  # N*
PUNCT = 32  # P*
SYM = 64  # S*
SPACE = 128  # the Unicode White_Space property (regex \s, Rust char::is_whitespace)
LETTER = LU | LL | LO

# PropList.txt White_Space (unchanged since Unicode 6.3). Python's str.isspace() differs:
# it also accepts U+001C..U+001F, which neither Oniguruma nor Rust treat as \s.
WHITE_SPACE = frozenset(
    [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B)]
    + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
)

# Added-token flags (the fourth field of an added token).
ADDED_SPECIAL = 1  # skipped when allow_special is False
ADDED_NORMALIZED = 2  # matched in the second pass, on text the first pass left
ADDED_LSTRIP = 4  # swallows the whitespace before it
ADDED_RSTRIP = 8  # swallows the whitespace after it

_CATEGORY_BITS = {"Lu": LU, "Lt": LU, "Ll": LL, "Lm": LO, "Lo": LO}


def char_class(cp: int) -> int:
    """The class bits of one code point, from ``unicodedata`` (the C tables come from here)."""
    cat = unicodedata.category(chr(cp))
    bits = _CATEGORY_BITS.get(cat, 0)
    if not bits:
        bits = {"M": MARK, "N": NUM, "P": PUNCT, "S": SYM}.get(cat[0], 0)
    return bits | (SPACE if cp in WHITE_SPACE else 0)


_classes: dict[str, int] = {}


def _cls(ch: str) -> int:
    c = _classes.get(ch)
    if c is None:
        c = _classes[ch] = char_class(ord(ch))
    return c


def _run(s: str, p: int, end: int, mask: int, neg: bool = False) -> int:
    """The end of the run from p of characters in the class (``[^...]`` when ``neg``)."""
    while p < end and bool(_cls(s[p]) & mask) != neg:
        p += 1
    return p


def _newlines(s: str, p: int, end: int) -> int:
    while p < end and s[p] in "\r\n":
        p += 1
    return p


def _fold(ch: str) -> str:
    # (?i) under Unicode simple case folding: only U+017F (long s) folds onto these letters.
    return "s" if ch == "\u017f" else ch.lower() if ch.isascii() else ch


def _contraction(s: str, p: int, end: int, fold: bool) -> int:
    """``'s|'t|'re|'ve|'m|'ll|'d`` at p (case-insensitively when ``fold``)."""
    if s[p] != "'" or p + 1 >= end:
        return -1
    a = _fold(s[p + 1]) if fold else s[p + 1]
    if a in "stmd":
        return p + 2
    if p + 2 < end:
        b = _fold(s[p + 2]) if fold else s[p + 2]
        if a + b in ("re", "ve", "ll"):
            return p + 3
    return -1


def _spaces(s: str, p: int, end: int, newline_alt: bool) -> int:
    """``\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`` at a whitespace character (without the first alternative
    when not ``newline_alt``)."""
    e = _run(s, p, end, SPACE)
    if newline_alt:
        for k in range(e - 1, p - 1, -1):  # backtracking \s* stops after the last newline
            if s[k] in "\r\n":
                return k + 1
    if e == end or e - p == 1:
        return e
    return e - 1  # \s+(?!\S) leaves the last space to the word that follows


def _class_alt(s: str, p: int, end: int, mask: int, neg: bool = False) -> int:
    """`` ?[class]+`` at p: the end of the run, or -1."""
    q = p + 1 if s[p] == " " else p
    if q < end and bool(_cls(s[q]) & mask) != neg:
        return _run(s, q + 1, end, mask, neg)
    return -1


def _cl100k(letters: int, digits: int) -> Callable[[str, int, int], int]:
    """cl100k/Llama-3 (``letters``=L, ``digits``=3), Qwen (L, 1), Qwen3.5 (L|M, 1)."""
    punct = SPACE | letters | NUM  # [^\s<letters>\p{N}]

    def match(s: str, p: int, end: int) -> int:
        ch = s[p]
        if ch == "'":
            e = _contraction(s, p, end, fold=True)
            if e >= 0:
                return e
        c = _cls(ch)
        # [^\r\n\p{L}\p{N}]?<letters>+
        if not c & (LETTER | NUM) and ch not in "\r\n" and p + 1 < end and _cls(s[p + 1]) & letters:
            return _run(s, p + 2, end, letters)
        if c & letters:
            return _run(s, p + 1, end, letters)
        if c & NUM:  # \p{N}{1,digits}
            e = p + 1
            while e < end and e - p < digits and _cls(s[e]) & NUM:
                e += 1
            return e
        e = _class_alt(s, p, end, punct, neg=True)  #  ?[^\s<letters>\p{N}]+[\r\n]*
        if e >= 0:
            return _newlines(s, e, end)
        return _spaces(s, p, end, True) if c & SPACE else -1

    return match


def _gpt2(s: str, p: int, end: int) -> int:
    """``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``"""
    if s[p] == "'":
        e = _contraction(s, p, end, fold=False)
        if e >= 0:
            return e
    for mask, neg in ((LETTER, False), (NUM, False), (SPACE | LETTER | NUM, True)):
        e = _class_alt(s, p, end, mask, neg)
        if e >= 0:
            return e
    return _spaces(s, p, end, False) if _cls(s[p]) & SPACE else -1


_UPPER = LU | LO | MARK  # [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
_LOWER = LL | LO | MARK  # [\p{Ll}\p{Lm}\p{Lo}\p{M}]


def _o200k_word(s: str, q: int, end: int, lower_needed: bool) -> int:
    """``_UPPER*_LOWER+`` (``lower_needed``) or ``_UPPER+_LOWER*`` at q, then an optional
    contraction."""
    u, last_lower = q, -1
    while u < end and _cls(s[u]) & _UPPER:
        if _cls(s[u]) & _LOWER:
            last_lower = u
        u += 1
    if lower_needed:
        if u < end and _cls(s[u]) & _LOWER:
            e = _run(s, u + 1, end, _LOWER)
        elif last_lower >= 0:  # backtracking _UPPER* hands its last lower-class letter to _LOWER+
            e = last_lower + 1
        else:
            return -1
    elif u == q:
        return -1
    else:
        e = _run(s, u, end, _LOWER)
    if e < end and s[e] == "'":
        c = _contraction(s, e, end, fold=True)
        if c >= 0:
            return c
    return e


def _o200k(s: str, p: int, end: int) -> int:
    r"""o200k: two letter-case alternatives with an optional contraction, ``\p{N}{1,3}``,
    `` ?[^\s\p{L}\p{N}]+[\r\n/]*`` and the usual whitespace alternatives."""
    ch = s[p]
    c = _cls(ch)
    prefix = not c & (LETTER | NUM) and ch not in "\r\n" and p + 1 < end
    for lower_needed in (True, False):
        if prefix:
            e = _o200k_word(s, p + 1, end, lower_needed)
            if e >= 0:
                return e
        e = _o200k_word(s, p, end, lower_needed)
        if e >= 0:
            return e
    if c & NUM:
        return _digits3(s, p, end)
    e = _class_alt(s, p, end, SPACE | LETTER | NUM, neg=True)
    if e >= 0:
        while e < end and s[e] in "\r\n/":
            e += 1
        return e
    return _spaces(s, p, end, True) if c & SPACE else -1


_ASCII_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _ascii_alpha_run(s: str, p: int, end: int) -> int:
    while p < end and s[p].isascii() and s[p].isalpha():
        p += 1
    return p


def _deepseek(s: str, p: int, end: int) -> int:
    """The third DeepSeek V3 Split: ``[<ascii punct>][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|
    ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+``"""
    ch = s[p]
    if ch in _ASCII_PUNCT and p + 1 < end and _ascii_alpha_run(s, p + 1, end) > p + 1:
        return _ascii_alpha_run(s, p + 2, end)
    c = _cls(ch)
    lm = LETTER | MARK
    if not c & (LETTER | PUNCT | SYM) and ch not in "\r\n" and p + 1 < end and _cls(s[p + 1]) & lm:
        return _run(s, p + 2, end, lm)
    if c & lm:
        return _run(s, p + 1, end, lm)
    e = _class_alt(s, p, end, PUNCT | SYM)
    if e >= 0:
        return _newlines(s, e, end)
    return _spaces(s, p, end, True) if c & SPACE else -1


def _digits3(s: str, p: int, end: int) -> int:
    """``\\p{N}{1,3}``"""
    e = p
    while e < end and e - p < 3 and _cls(s[e]) & NUM:
        e += 1
    return e if e > p else -1


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return 0x4E00 <= cp <= 0x9FA5 or 0x3040 <= cp <= 0x30FF


def _cjk(s: str, p: int, end: int) -> int:
    """``[一-龥぀-ゟ゠-ヿ]+``"""
    e = p
    while e < end and _is_cjk(s[e]):
        e += 1
    return e if e > p else -1


SPLITS: dict[str, Callable[[str, int, int], int]] = {
    "gpt2": _gpt2,
    "cl100k": _cl100k(LETTER, 3),
    "qwen": _cl100k(LETTER, 1),
    "qwen35": _cl100k(LETTER | MARK, 1),
    "digits3": _digits3,
    "cjk": _cjk,
    "deepseek": _deepseek,
    "o200k": _o200k,
}
"""Matchers by name; the C twin numbers them in this order."""


def _split(s: str, start: int, end: int, match: Callable[[str, int, int], int]) -> list[tuple[int, int]]:
    """Cut ``s[start:end]`` like a Split(behavior="Isolated") pre-tokenizer."""
    out = []
    gap = p = start
    while p < end:
        e = match(s, p, end)
        if e < 0:
            p += 1
            continue
        if gap < p:
            out.append((gap, p))
        out.append((p, e))
        gap = p = e
    if gap < end:
        out.append((gap, end))
    return out


def _scrub(text: str) -> str:
    """Lone surrogates become U+FFFD (as tiktoken does; a high+low pair becomes one character)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


class BpeCore:
    """A byte-level BPE encoder for one vocabulary.

    ``vocab`` maps token bytes to ids. ``merges`` lists ``(left_id, right_id, merged_id)``
    by rank (tokenizer.json); ``None`` ranks a pair by the id of its concatenation
    (tiktoken). ``added`` lists ``(content, id, flags)``. ``splits`` names the nested
    pre-tokenizer Splits in order. ``ignore_merges`` emits a word that is itself in the
    vocabulary as one token.
    """

    def __init__(
        self,
        vocab: dict[bytes, int],
        merges: Sequence[tuple[int, int, int]] | None,
        added: Sequence[tuple[str, int, int]],
        splits: Sequence[str],
        ignore_merges: bool,
    ) -> None:
        try:
            self._byte_ids = [vocab[bytes([b])] for b in range(256)]
        except KeyError as exc:
            raise ValueError(f"vocabulary lacks the single byte {exc.args[0]!r}") from None
        unknown = [name for name in splits if name not in SPLITS]
        if unknown or not splits:
            raise ValueError(f"unknown pre-tokenizer splits {unknown or splits!r}")
        self._vocab = dict(vocab)
        self._bytes = {i: b for b, i in vocab.items()}
        self._pairs = None if merges is None else {(a, b): (r, m) for r, (a, b, m) in enumerate(merges)}
        self._matchers = [SPLITS[name] for name in splits]
        self._ignore_merges = ignore_merges
        self._added = [(c, i, f) for c, i, f in added if c]
        self._passes = [
            self._pattern([a for a in self._added if not a[2] & ADDED_NORMALIZED]),
            self._pattern([a for a in self._added if a[2] & ADDED_NORMALIZED]),
        ]
        self._cache: dict[bytes, list[int]] = {}
        self._words: list[str] | None = None

    @staticmethod
    def _pattern(tokens: list[tuple[str, int, int]]) -> tuple[re.Pattern[str], dict[str, tuple[int, int]]] | None:
        if not tokens:
            return None
        by_content = {c: (i, f) for c, i, f in tokens}
        # Longest first: Python's leftmost-first alternation becomes leftmost-longest.
        alternation = "|".join(re.escape(c) for c in sorted(by_content, key=len, reverse=True))
        return re.compile(alternation), by_content

    def encode(self, text: str, allow_special: bool = True) -> list[int]:
        out: list[int] = []
        text = _scrub(text)
        self._added_pass(text, 0, len(text), 0, allow_special, out)
        return out

    def encode_batch(self, texts: Sequence[str], allow_special: bool = True) -> list[list[int]]:
        return [self.encode(t, allow_special) for t in texts]

    def pretokenize(self, text: str, allow_special: bool = True) -> list[str]:
        """The words BPE sees, in order (added tokens left out)."""
        pieces: list[str] = []
        self._words = pieces
        text = _scrub(text)
        try:
            self._added_pass(text, 0, len(text), 0, allow_special, [])
        finally:
            self._words = None
        return pieces

    def _added_pass(self, s: str, start: int, end: int, level: int, allow: bool, out: list[int]) -> None:
        if level == len(self._passes):
            self._pretokenize(s, start, end, 0, out)
            return
        pass_ = self._passes[level]
        if pass_ is None:
            self._added_pass(s, start, end, level + 1, allow, out)
            return
        pattern, by_content = pass_
        gap = start
        for m in pattern.finditer(s, start, end):
            tid, flags = by_content[m.group()]
            if not allow and flags & ADDED_SPECIAL:
                continue
            a, b = m.span()
            if flags & ADDED_LSTRIP:
                while a > gap and _cls(s[a - 1]) & SPACE:
                    a -= 1
            if flags & ADDED_RSTRIP:
                while b < end and _cls(s[b]) & SPACE:
                    b += 1
            if a < gap:  # an earlier rstrip swallowed the start of this one
                continue
            if gap < a:
                self._added_pass(s, gap, a, level + 1, allow, out)
            out.append(tid)
            gap = b
        if gap < end:
            self._added_pass(s, gap, end, level + 1, allow, out)

    def _pretokenize(self, s: str, start: int, end: int, level: int, out: list[int]) -> None:
        if level == len(self._matchers):
            if self._words is not None:
                self._words.append(s[start:end])
            else:
                out.extend(self._word(s[start:end].encode("utf-8")))
            return
        for a, b in _split(s, start, end, self._matchers[level]):
            self._pretokenize(s, a, b, level + 1, out)

    def _word(self, word: bytes) -> list[int]:
        ids = self._cache.get(word)
        if ids is None:
            ids = self._merge(word)
            if len(self._cache) > 65536:
                self._cache.clear()
            self._cache[word] = ids
        return ids

    def _rank(self, a: int, b: int) -> tuple[int, int] | None:
        if self._pairs is not None:
            return self._pairs.get((a, b))
        merged = self._vocab.get(self._bytes[a] + self._bytes[b])
        return None if merged is None else (merged, merged)

    def _merge(self, word: bytes) -> list[int]:
        if self._ignore_merges and word in self._vocab:
            return [self._vocab[word]]
        ids = [self._byte_ids[b] for b in word]
        # The lowest-ranked adjacent pair merges first; the leftmost among equals.
        while len(ids) > 1:
            best, at = None, -1
            for i in range(len(ids) - 1):
                r = self._rank(ids[i], ids[i + 1])
                if r is not None and (best is None or r[0] < best[0]):
                    best, at = r, i
            if best is None:
                break
            ids[at : at + 2] = [best[1]]
        return ids
