"""The GetTokenizer rpc bundle: a zip of a tokenizer's files, with its sha256.

The zip is deterministic (sorted names, fixed timestamps), so the same tokenizer always
gives the same digest. Reading one checks the digest when given and the limits the Rust
gateway applies (at most 50 entries and 500 MiB uncompressed); entries are read into
memory, never extracted to disk, and only their base names are used.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import PurePosixPath

from smg.tokenizer.errors import TokenizerError
from smg.tokenizer.loader import build_tokenizer
from smg.tokenizer.tokenizer import Tokenizer

__all__ = ["MAX_ENTRIES", "MAX_UNCOMPRESSED", "load_tokenizer_from_zip", "zip_tokenizer_files"]

MAX_ENTRIES = 50
MAX_UNCOMPRESSED = 500 * 1024 * 1024
_EPOCH = (1980, 1, 1, 0, 0, 0)


def zip_tokenizer_files(tok: Tokenizer) -> tuple[bytes, str]:
    """(zip bytes, sha256 hex of those bytes) of ``tok.files``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(tok.files):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, tok.files[name])
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def read_zip_files(data: bytes, sha256: str | None = None) -> dict[str, bytes]:
    """The files in a bundle (base name -> bytes), after the digest and limit checks."""
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256.lower():
        raise TokenizerError("tokenizer bundle: sha256 mismatch (corrupt or truncated)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise TokenizerError(f"tokenizer bundle: not a zip file ({exc})") from None
    with zf:
        entries = [i for i in zf.infolist() if not i.is_dir()]
        if len(entries) > MAX_ENTRIES:
            raise TokenizerError(f"tokenizer bundle: {len(entries)} entries (limit {MAX_ENTRIES})")
        if sum(i.file_size for i in entries) > MAX_UNCOMPRESSED:
            raise TokenizerError("tokenizer bundle: over 500 MiB uncompressed")
        files: dict[str, bytes] = {}
        for info in entries:
            name = PurePosixPath(info.filename.replace("\\", "/")).name
            if not name or name in files:
                continue
            try:
                content = zf.read(info)
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                raise TokenizerError(f"tokenizer bundle: cannot read {name}: {exc}") from None
            files[name] = content
    return files


def load_tokenizer_from_zip(
    data: bytes,
    *,
    sha256: str | None = None,
    name: str = "tokenizer bundle",
    chat_template: str | os.PathLike[str] | None = None,
    fast_encoder: bool = True,
) -> Tokenizer:
    """Load a tokenizer from GetTokenizer zip bytes (checked against ``sha256`` if given)."""
    files = read_zip_files(data, sha256)
    return build_tokenizer(name, files, chat_template=chat_template, fast_encoder=fast_encoder)
