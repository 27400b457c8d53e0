"""Text for the bpe differential tests: a seeded mixed corpus and hypothesis strategies."""

from __future__ import annotations

import random

from hypothesis import strategies as st

ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "It's what they'd said: we're sure you'll see I'm right, and they've gone.",
    "IT'S LOUD; YOU'LL HEAR 'EM. Don'T Mix'Em Up'S",
    "Mr. O'Neil paid $1,234.56 on 2024-05-01 at 10:30am (approx. 3.5%).",
    "e.g. the U.S.A. -- not the U.K.; see https://example.com/a?b=c&d=e#frag",
]
CODE = [
    "def encode(self, text: str) -> list[int]:\n    return [t for t in text if t]\n",
    "\tif (x != y && z >= 0) {\r\n\t\treturn x->next;\r\n\t}\r\n",
    "const f = async (a, b) => { await a?.b ?? c; };  // comment\n",
    "SELECT id, name FROM users WHERE age > 21 ORDER BY name DESC;",
    "    for i in range(10):\n        print(f'{i:>3}')\n\n\n",
    "#include <stdio.h>\nint main(void){printf(\"%d\\n\",42);}",
]
CHINESE = ["中文分词测试，今天天气很好。", "我们在北京大学学习人工智能与机器学习。", "「引号」与（括号）以及……省略号"]
JAPANESE = ["日本語のテキストです。カタカナ・ひらがな、漢字まじり。", "ラーメンを食べたい！", "ｶﾀｶﾅ半角とー長音"]
RUSSIAN = ["Привет, мир! Как дела?", "Съешь же ещё этих мягких французских булок, да выпей чаю.", "ЁЖИК в тумане"]
EMOJI = ["👨‍👩‍👧‍👦", "👍🏽", "❤️", "🏳️‍🌈", "🇯🇵🇺🇸", "🧑🏿‍💻", "😀😃😄", "✨🔥💯", "a\u200db", "e\u0301\u0302"]
SPACES = ["   ", "\t\t", "\r\n", "\n\n\n", " \n ", "\u3000", "\xa0", "\r\n\r\n  ", "\t \t", " "]
SPACES += ["\x0b\x0c", "\x85", "\u2028"]
NUMBERS = ["3.14159", "1,000,000", "1234567890", "１２３", "٣٤٥", "½ ⅓", "Ⅻ", "x2", "v1.2.3", "0x1F"]
MISC = ["'s", "'T", "'LL", "'ſ", "''", "...", "?!", "--", "__init__", "ß", "İstanbul", "ﬁ", "Ω≈ç√", "\x00\x01", "·"]
PLAIN = ENGLISH + CODE + CHINESE + JAPANESE + RUSSIAN + EMOJI + SPACES + NUMBERS + MISC

DEEPSEEK_SPECIAL = [
    "<｜begin▁of▁sentence｜>",
    "<｜end▁of▁sentence｜>",
    "<｜User｜>",
    "<｜Assistant｜>",
    "<think>",
    "</think>",
    "<|EOT|>",
    "<｜tool▁calls▁begin｜>",
    "<｜Use",  # a prefix of a special token is plain text
    "<think",
]
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|extra_7|>", "<|extra_204|>", "<|im_sta", "<|extra_"]

_SEPARATORS = ["", " ", " ", "\n", "\t", "  "]


def mixed_corpus(specials: list[str], count: int, seed: int) -> list[str]:
    """``count`` documents of 1..60 fragments from every group, specials among them."""
    rng = random.Random(seed)
    pool = PLAIN + specials * 3
    docs = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 60)):
            parts.append(rng.choice(pool))
            parts.append(rng.choice(_SEPARATORS))
        docs.append("".join(parts))
    return docs


# Unassigned code points (Cn) are left out: Python's unicodedata, Oniguruma and Rust's regex
# ship different Unicode versions, and they disagree on characters assigned since.
_chars = st.characters(exclude_categories=("Cs", "Cn"))
_ascii = st.characters(min_codepoint=0, max_codepoint=0x7F)


def texts(specials: list[str]) -> st.SearchStrategy[str]:
    piece = st.one_of(
        st.text(_chars, max_size=6),
        st.text(_ascii, max_size=8),
        st.sampled_from(PLAIN + specials),
    )
    return st.lists(piece, max_size=10).map("".join)
