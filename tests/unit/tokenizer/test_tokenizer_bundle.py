"""The GetTokenizer zip bundle: round trip, digest, limits."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from smg.tokenizer import Tokenizer, TokenizerError, load_tokenizer, load_tokenizer_from_zip, zip_tokenizer_files
from smg.tokenizer.bundle import MAX_ENTRIES

MESSAGES = [{"role": "user", "content": "Hello 你好 🎉"}]


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_round_trip(builtin_tok: Tokenizer) -> None:
    tok = builtin_tok
    data, digest = zip_tokenizer_files(tok)
    assert digest == hashlib.sha256(data).hexdigest()
    back = load_tokenizer_from_zip(data, sha256=digest, fast_encoder=False)
    assert back.files == tok.files
    assert back.eos_token_ids == tok.eos_token_ids
    assert back.special_token_ids == tok.special_token_ids
    assert back.vocab_size == tok.vocab_size
    text = tok.apply_chat_template(MESSAGES)
    assert back.apply_chat_template(MESSAGES) == text
    assert back.encode(text) == tok.encode(text)
    # Deterministic: zipping again gives the same bytes and digest.
    assert zip_tokenizer_files(back) == (data, digest)


def test_directory_round_trip(model_dir) -> None:
    d = model_dir({"generation_config.json": {"eos_token_id": [1, 2]}, "chat_template.jinja": "T"})
    tok = load_tokenizer(d)
    back = load_tokenizer_from_zip(zip_tokenizer_files(tok)[0])
    assert back.eos_token_ids == (1, 2)
    assert back.apply_chat_template([]) == "T"


def test_digest_mismatch_is_rejected(model_dir) -> None:
    data, digest = zip_tokenizer_files(load_tokenizer(model_dir()))
    bad = "0" * 64 if digest != "0" * 64 else "1" * 64
    with pytest.raises(TokenizerError, match="sha256"):
        load_tokenizer_from_zip(data, sha256=bad)
    with pytest.raises(TokenizerError, match="sha256"):
        load_tokenizer_from_zip(data[:-10], sha256=digest)


def test_not_a_zip_and_missing_tokenizer() -> None:
    with pytest.raises(TokenizerError, match="not a zip"):
        load_tokenizer_from_zip(b"definitely not a zip")
    with pytest.raises(TokenizerError, match="tokenizer.json"):
        load_tokenizer_from_zip(_zip({"config.json": b"{}"}))


def test_entries_in_a_folder_use_their_base_names(tiny_tokenizer_json: str) -> None:
    data = _zip({"model/tokenizer.json": tiny_tokenizer_json.encode(), "model/x.jinja": b"J"})
    tok = load_tokenizer_from_zip(data)
    assert tok.apply_chat_template([]) == "J"


def test_too_many_entries(tiny_tokenizer_json: str) -> None:
    entries = {f"f{i}.txt": b"" for i in range(MAX_ENTRIES)}
    entries["tokenizer.json"] = tiny_tokenizer_json.encode()
    with pytest.raises(TokenizerError, match="entries"):
        load_tokenizer_from_zip(_zip(entries))
