"""Wire compatibility with a client no one here wrote: the Rust SMG gateway (PyPI ``smg``)
routes OpenAI chat completions through ``smg worker`` over gRPC (SGLang protocol).

The gateway templates and tokenizes the chat, calls Generate on the worker, detokenizes
the streamed token ids and answers in OpenAI format; the text must be exactly what the
worker generated. CI installs the Rust wheel into ``.venv-rust/`` in the clone (never into the environment
under test: both install a command named ``smg``); elsewhere the tests are skipped when it
is missing, or set SMG_RUST_GATEWAY to its ``smg`` executable.
"""

from __future__ import annotations

import asyncio
import contextlib
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

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUST_SMG = os.environ.get("SMG_RUST_GATEWAY", str(ROOT / ".venv-rust" / "bin" / "smg"))
MODEL = "smg-reference"


@pytest.fixture(scope="module", autouse=True)
def rust_gateway_installed() -> None:
    """CI installs the Rust wheel (.ci/run); there, not finding it is a failure."""
    if os.access(RUST_SMG, os.X_OK):
        return
    why = f"Rust SMG gateway not installed at {RUST_SMG} (set SMG_RUST_GATEWAY)"
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read()
    except OSError:
        return 0, b""


def _chat_ok(base: str) -> bool:
    body = json.dumps({"model": MODEL, "max_tokens": 1,
                       "messages": [{"role": "user", "content": "ready?"}]}).encode()
    req = urllib.request.Request(base + "/v1/chat/completions", data=body,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> pathlib.Path:
    """A model directory as the gateway expects: tokenizer.json, tokenizer_config.json
    and the chat template of the real DeepSeek tokenizer, and a config.json."""
    path = tmp_path_factory.mktemp("deepseek-model")
    for name, data in deepseek_tokenizer().files.items():
        (path / name).write_bytes(data)
    # without a config.json the gateway looks the model up on the HF hub per request
    (path / "config.json").write_text('{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}')
    return path


@contextlib.contextmanager
def rust_gateway(model: pathlib.Path, *worker_args: str, tokenizer_from_worker: bool = False):
    """``smg launch`` (the Rust gateway) on a free loopback port; yields its base URL and
    log file. ``worker_args``: ``--worker-urls ...`` or the PD flags. With
    ``tokenizer_from_worker`` the gateway gets no model path and must fetch the
    tokenizer with the GetTokenizer rpc."""
    log = model.parent / f"rust-gateway-{free_port()}.log"
    port = free_port()
    paths = [] if tokenizer_from_worker else [
        "--model-path", str(model), "--tokenizer-path", str(model)]
    with open(log, "wb") as out:
        rust = subprocess.Popen(
            [RUST_SMG, "launch", *worker_args, *paths, "--host", "127.0.0.1", "--port", str(port),
             "--prometheus-host", "127.0.0.1", "--prometheus-port", str(free_port()),
             "--log-level", "info" if tokenizer_from_worker else "warn"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if _chat_ok(base):  # the model is listed before its tokenizer is registered
                break
            if rust.poll() is not None or time.monotonic() > deadline:
                pytest.fail("Rust gateway did not come up:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
        yield base, log
    finally:
        if rust.poll() is None:
            rust.terminate()
            try:
                rust.wait(10)
            except subprocess.TimeoutExpired:
                rust.kill()
                rust.wait()


@contextlib.contextmanager
def workers(*arg_lists: tuple[str, ...]):
    """``smg worker`` processes started together; yields their ports."""
    procs = [WorkerProcess(*args) for args in arg_lists]
    try:
        yield [p.wait_ready() for p in procs]
    finally:
        for p in procs:
            p.stop()


@pytest.fixture(scope="module")
def gateway(model_dir):
    with workers(("--tokenizer", str(model_dir), "--model", MODEL)) as (port,), \
            rust_gateway(model_dir, "--worker-urls", f"grpc://127.0.0.1:{port}") as (base, log):
        yield base, deepseek_tokenizer(), log


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


def test_concurrent_streams_through_the_rust_gateway(gateway) -> None:
    """Many streams multiplexed on the gateway's one HTTP/2 connection to the worker."""
    import openai

    base, _, _ = gateway

    async def run() -> list[str]:
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="none", max_retries=0)

        async def one(i: int) -> str:
            stream = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"request {i}"}], stream=True
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        try:
            return await asyncio.gather(*(one(i) for i in range(16)))
        finally:
            await client.close()

    assert asyncio.run(run()) == [DEFAULT_CYCLE_TEXT] * 16


@pytest.mark.slow  # its own workers and gateway
def test_sglang_pd_through_the_rust_gateway(model_dir) -> None:
    """--pd-disaggregation: the gateway sends both legs with bootstrap host/port/room; the
    decode worker pairs with the prefill worker through its bootstrap server."""
    bootstrap = free_port()
    common = ("--tokenizer", str(model_dir), "--model", MODEL)
    with workers((*common, "--role", "prefill", "--bootstrap-port", str(bootstrap)),
                 (*common, "--role", "decode", "--pd-timeout-s", "5")) as (p_port, d_port), \
            rust_gateway(model_dir, "--pd-disaggregation",
                         "--prefill", f"grpc://127.0.0.1:{p_port}", str(bootstrap),
                         "--decode", f"grpc://127.0.0.1:{d_port}") as (base, _):
        client = _client(base)
        resp = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "pd"}], max_tokens=12
        )
        ids = deepseek_tokenizer().encode(DEFAULT_CYCLE_TEXT)
        # a prefill leg makes one token; twelve came from the decode worker
        assert resp.choices[0].message.content == deepseek_tokenizer().decode(ids[:12])
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "pd stream"}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        print(f"\nRust gateway, SGLang PD: {text!r}")
        assert text == DEFAULT_CYCLE_TEXT


@pytest.mark.slow  # its own workers and gateway
def test_vllm_worker_through_the_rust_gateway(model_dir) -> None:
    """The gateway detects the vLLM protocol (HealthCheck on each client) and serves it."""
    with workers(("--tokenizer", str(model_dir), "--model", MODEL, "--grpc-proto", "vllm")) as (port,), \
            rust_gateway(model_dir, "--worker-urls", f"grpc://127.0.0.1:{port}") as (base, _):
        client = _client(base)
        resp = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "vllm"}]
        )
        assert resp.choices[0].message.content == DEFAULT_CYCLE_TEXT
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "vllm stream"}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        print(f"\nRust gateway, vLLM worker: {text!r}")
        assert text == DEFAULT_CYCLE_TEXT


@pytest.mark.slow  # its own workers and gateway
def test_vllm_pd_through_the_rust_gateway(model_dir) -> None:
    """vLLM-style PD: the gateway sees kv_connector=NixlConnector in GetServerInfo, sends
    the prefill leg first, relays its kv_transfer_params_json to the decode leg (which
    refuses to run without them)."""
    common = ("--tokenizer", str(model_dir), "--model", MODEL, "--grpc-proto", "vllm",
              "--pd-style", "vllm")
    with workers((*common, "--role", "prefill", "--bootstrap-port", str(free_port())),
                 (*common, "--role", "decode", "--pd-timeout-s", "5")) as (p_port, d_port), \
            rust_gateway(model_dir, "--pd-disaggregation",
                         "--prefill", f"grpc://127.0.0.1:{p_port}",
                         "--decode", f"grpc://127.0.0.1:{d_port}") as (base, _):
        resp = _client(base).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "vllm pd"}], max_tokens=12
        )
        ids = deepseek_tokenizer().encode(DEFAULT_CYCLE_TEXT)
        print(f"\nRust gateway, vLLM PD: {resp.choices[0].message.content!r}")
        assert resp.choices[0].message.content == deepseek_tokenizer().decode(ids[:12])


def test_logprobs_through_the_rust_gateway(gateway) -> None:
    base, _, _ = gateway
    resp = _client(base).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "lp"}], max_tokens=4,
        logprobs=True, top_logprobs=2,
    )
    content = resp.choices[0].logprobs.content
    assert len(content) == 4
    assert all(entry.logprob <= 0 and len(entry.top_logprobs) == 2 for entry in content)
    assert "".join(entry.token for entry in content) == resp.choices[0].message.content


SCRIPT = [
    {
        "match": "weather",
        "output": (
            "<think>The user wants the weather; call the tool.</think>"
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
            '```json\n{"city": "Paris"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>'
        ),
    },
    {"match": "think", "output": "<think>Short thought.</think>Plain answer."},
]


@pytest.mark.slow  # its own workers and gateway
def test_script_mode_feeds_the_gateways_parsers(model_dir) -> None:
    """Scripted raw model text (reasoning, then a DeepSeek-V3 tool call), tokenized by the
    worker with the real tokenizer, comes back parsed by the gateway's own parsers."""
    script = model_dir.parent / "script.json"
    script.write_text(json.dumps(SCRIPT, ensure_ascii=False), encoding="utf-8")
    args = ("--tokenizer", str(model_dir), "--model", MODEL, "--mode", "script", "--script", str(script))
    with workers(args) as (port,), rust_gateway(
        model_dir, "--worker-urls", f"grpc://127.0.0.1:{port}",
        "--reasoning-parser", "deepseek_r1", "--tool-call-parser", "deepseek",
    ) as (base, _):
        client = _client(base)
        plain = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "think first"}]
        ).choices[0]
        assert plain.message.content == "Plain answer."
        assert plain.message.reasoning_content == "Short thought."
        tools = [{"type": "function", "function": {
            "name": "get_weather", "description": "weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }}]
        choice = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "weather in Paris?"}], tools=tools
        ).choices[0]
        print(f"\nRust gateway, scripted tool call: {choice.model_dump_json()[:400]}")
        assert choice.message.reasoning_content == "The user wants the weather; call the tool."
        (call,) = choice.message.tool_calls
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris"}
        assert choice.finish_reason == "tool_calls"


@pytest.mark.slow  # its own workers and gateway
def test_tokenizer_fetched_with_get_tokenizer(model_dir) -> None:
    """No tokenizer path for the gateway: it fetches the worker's zip bundle (GetTokenizer,
    64 KiB chunks, sha256 on the last) and serves chats with it."""
    with workers(("--model", MODEL)) as (port,), rust_gateway(
        model_dir, "--worker-urls", f"grpc://127.0.0.1:{port}", tokenizer_from_worker=True
    ) as (base, log):
        resp = _client(base).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "bundle"}]
        )
        assert resp.choices[0].message.content == DEFAULT_CYCLE_TEXT
        assert "Fetching tokenizer from worker" in pathlib.Path(log).read_text(errors="replace")
