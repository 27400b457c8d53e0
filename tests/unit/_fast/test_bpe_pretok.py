"""bpe's hand-written pre-tokenizer matchers against the `regex` module running the real
patterns (both twins), including the families no test vocabulary here uses (GPT-2,
cl100k/Llama-3, Qwen3.5)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from smg._fast.bpe import KNOWN_PATTERNS, pattern_split
from tests.conftest import KernelImpl, kernel_impls
from tests.unit._fast.bpe_corpus import DEEPSEEK_SPECIAL, mixed_corpus, texts

regex = pytest.importorskip("regex")

impls = pytest.mark.parametrize("impl", kernel_impls("bpe"))
BY_NAME = {name: pattern for pattern, name in KNOWN_PATTERNS.items()}
FAMILIES = {
    "gpt2": ["gpt2"],
    "cl100k": ["cl100k"],
    "qwen": ["qwen"],
    "qwen35": ["qwen35"],
    "deepseek": ["digits3", "cjk", "deepseek"],
    "o200k": ["o200k"],
}
_BYTES = {bytes([b]): b for b in range(256)}


def reference_split(text: str, names: list[str]) -> list[str]:
    """Nested Split(behavior="Isolated") with the regex module: matches and gaps."""
    pieces = [text]
    for name in names:
        pattern = regex.compile(BY_NAME[name])
        out = []
        for piece in pieces:
            gap = 0
            for m in pattern.finditer(piece):
                if gap < m.start():
                    out.append(piece[gap : m.start()])
                out.append(m.group())
                gap = m.end()
            if gap < len(piece):
                out.append(piece[gap:])
        pieces = out
    return pieces


def _core(impl: KernelImpl, family: str):
    return impl.module.BpeCore(_BYTES, [], [], FAMILIES[family], False)


@impls
@pytest.mark.parametrize("family", FAMILIES)
def test_matchers_cut_the_corpus_like_the_regexes(impl: KernelImpl, family: str) -> None:
    core = _core(impl, family)
    docs = mixed_corpus(DEEPSEEK_SPECIAL, 20 if impl.tag == "c" else 5, seed=11)
    for doc in docs:
        assert core.pretokenize(doc) == reference_split(doc, FAMILIES[family]), doc


@impls
@pytest.mark.parametrize("family", FAMILIES)
def test_matchers_cut_generated_strings_like_the_regexes(impl: KernelImpl, family: str) -> None:
    core = _core(impl, family)

    @settings(
        max_examples=80 if impl.tag == "c" else 20,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(texts([]))
    def check(text: str) -> None:
        assert core.pretokenize(text) == reference_split(text, FAMILIES[family])

    check()


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ("it's 'S 'ſ 'Re 'LL x", "cl100k"),  # contractions fold case, U+017F folds to s
        ("it's 'S 'Re", "gpt2"),  # GPT-2's are case-sensitive
        ("a  \n\n  b   c\t\t\nd   ", "cl100k"),  # \s*[\r\n]+ and \s+(?!\S)
        ("12345 ١٢٣٤ 1½", "cl100k"),
        ("12345", "qwen"),
        ("e\u0301e\u0301 x\u0301", "qwen35"),  # marks are letters in Qwen3.5
        ("e\u0301e\u0301 x\u0301", "qwen"),
        ("x.café .Hello ,world 12345中文abc", "deepseek"),
        ("👨\u200d👩 \u200dabc", "deepseek"),  # a gap (unmatched ZWJ) becomes its own piece
        ("HelloWorld HTTPServer ÀÉxyz ǅungla Ab'S 'll x\u0301\u0301Y", "o200k"),
        ("ab\u02b0C\u02b0D ZZ\u0301 a/b\n/\n 123456", "o200k"),
    ],
)
@impls
def test_edge_cases(impl: KernelImpl, text: str, family: str) -> None:
    assert _core(impl, family).pretokenize(text) == reference_split(text, FAMILIES[family])


def test_patterns_are_recognised_by_their_text() -> None:
    deepseek = BY_NAME["deepseek"]
    assert pattern_split(deepseek) == "deepseek"
    assert pattern_split(deepseek.replace(r"\r", "\r").replace(r"\n", "\n")) == "deepseek"  # as in tokenizer.json
    assert pattern_split(BY_NAME["cl100k"] + "|x") is None
    assert pattern_split(r"\p{N}{1,3}") == "digits3"


def test_committed_unicode_table_matches_the_generator() -> None:
    """The C classes come from a committed header; it must be what the generator writes
    from this Python's unicodedata (else rerun tools/gen_bpe_unicode.py)."""
    import importlib.util
    import pathlib
    import unicodedata

    root = pathlib.Path(__file__).resolve().parents[3]
    header = (root / "smg" / "_fast" / "include" / "bpe_unicode.h").read_text()
    if f'BPE_UNICODE_VERSION "{unicodedata.unidata_version}"' not in header:
        pytest.skip(f"header generated for another Unicode version than {unicodedata.unidata_version}")
    spec = importlib.util.spec_from_file_location("gen_bpe_unicode", root / "tools" / "gen_bpe_unicode.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.render() == header


@impls
def test_bad_tables_are_clear_errors(impl: KernelImpl) -> None:
    with pytest.raises(ValueError, match="unknown pre-tokenizer splits"):
        impl.module.BpeCore(_BYTES, [], [], ("nope",), False)
    with pytest.raises(ValueError, match="lacks the single byte"):
        impl.module.BpeCore({b"a": 1}, [], [], ("gpt2",), False)
