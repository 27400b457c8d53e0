"""Wire compatibility with a client no one here wrote: the Rust SMG gateway (PyPI ``smg``)
routes OpenAI chat completions through ``smg worker`` over gRPC (SGLang protocol).

The gateway templates and tokenizes the chat, calls Generate on the worker, detokenizes
the streamed token ids and answers in OpenAI format; the text must be exactly what the
worker generated. Skipped when the Rust gateway is not installed: set SMG_RUST_GATEWAY
to its ``smg`` executable, or install the wheel into /work/rust-smg-venv (never into the
environment under test: both install a command named ``smg``).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import time
import urllib.request

import pytest
from _grpc_worker_lib import WorkerProcess, deepseek_tokenizer

from smg.engine.config import DEFAULT_CYCLE_TEXT
from tests.conftest import free_port

RUST_SMG = os.environ.get("SMG_RUST_GATEWAY", "/work/rust-smg-venv/bin/smg")
MODEL = "smg-reference"

pytestmark = pytest.mark.skipif(
    not os.access(RUST_SMG, os.X_OK),
    reason=f"Rust SMG gateway not installed at {RUST_SMG} (set SMG_RUST_GATEWAY)",
)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read()
    except OSError:
        return 0, b""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    tok = deepseek_tokenizer()
    model_dir = tmp_path_factory.mktemp("deepseek-model")
    for name, data in tok.files.items():  # tokenizer.json, tokenizer_config.json, template
        (model_dir / name).write_bytes(data)
    worker = WorkerProcess("--tokenizer", str(model_dir), "--model", MODEL)
    log = model_dir.parent / "rust-gateway.log"
    port = free_port()
    rust = None
    try:
        worker_port = worker.wait_ready()
        with open(log, "wb") as out:
            rust = subprocess.Popen(
                [RUST_SMG, "launch", "--worker-urls", f"grpc://127.0.0.1:{worker_port}",
                 "--model-path", str(model_dir), "--tokenizer-path", str(model_dir),
                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "warn"],
                stdout=out, stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            status, body = _get(base + "/v1/models")
            if status == 200 and MODEL in body.decode():
                break
            if rust.poll() is not None or time.monotonic() > deadline:
                pytest.fail("Rust gateway did not come up:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
        yield base, tok, log
    finally:
        if rust is not None and rust.poll() is None:
            rust.terminate()
            try:
                rust.wait(10)
            except subprocess.TimeoutExpired:
                rust.kill()
                rust.wait()
        worker.stop()


def _client(base: str):
    import openai

    return openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0, timeout=30)


def test_chat_completion_through_the_rust_gateway(gateway) -> None:
    base, tok, _ = gateway
    resp = _client(base).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say something."}]
    )
    choice = resp.choices[0]
    print("\nRust gateway, non-streaming:", json.dumps(resp.model_dump(), ensure_ascii=False)[:600])
    assert choice.message.content == DEFAULT_CYCLE_TEXT
    assert choice.finish_reason == "stop"
    assert resp.usage.completion_tokens == len(tok.encode(DEFAULT_CYCLE_TEXT)) + 1  # + EOS
    assert resp.usage.prompt_tokens > 0


def test_streaming_chat_completion_through_the_rust_gateway(gateway) -> None:
    base, _, _ = gateway
    stream = _client(base).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Stream something."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            parts.append(c.delta.content or "")
            finish = c.finish_reason or finish
    text = "".join(parts)
    print(f"\nRust gateway, streaming: {len(parts)} chunks, text={text!r}, finish={finish}")
    assert text == DEFAULT_CYCLE_TEXT
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


def test_max_tokens_and_stop_through_the_rust_gateway(gateway) -> None:
    base, tok, _ = gateway
    client = _client(base)
    ids = tok.encode(DEFAULT_CYCLE_TEXT)
    resp = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "short"}], max_tokens=6
    )
    assert resp.choices[0].message.content == tok.decode(ids[:6])
    assert resp.choices[0].finish_reason == "length"
    # a stop string the gateway matches on the text it detokenized from our token ids
    resp = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "stop early"}], stop=["lazy"]
    )
    assert resp.choices[0].message.content == DEFAULT_CYCLE_TEXT.split("lazy")[0]
    assert resp.choices[0].finish_reason == "stop"


def test_the_gateway_keeps_the_worker(gateway) -> None:
    """Health checks, KV event subscription and loads polling did not evict the worker."""
    base, _, log = gateway
    status, body = _get(base + "/v1/models")
    assert status == 200 and MODEL in body.decode()
    text = pathlib.Path(log).read_text(errors="replace")
    assert "vetoed" not in text, text[-2000:]
