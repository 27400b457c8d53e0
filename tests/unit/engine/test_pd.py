"""Prefill/decode pairing between two engines that share nothing but loopback TCP."""

from __future__ import annotations

import asyncio

import pytest
from _engine_testlib import collect, request

from smg.engine.config import DEFAULT_CYCLE_TEXT
from smg.engine.core import EngineError
from smg.engine.pd import RoomBoard, fetch_room

PROMPT = "Disaggregated serving: prefill here, decode there."


def _sglang_leg(rid, ids, port, room, **params):
    inp = request(rid, ids, **params)
    inp.bootstrap_host, inp.bootstrap_port, inp.bootstrap_room = "127.0.0.1", port, room
    return inp


async def test_sglang_style_decode_waits_for_its_prefill(make_engine, tokenizer) -> None:
    prefill = await make_engine(role="prefill", bootstrap_port=0)
    decode = await make_engine(role="decode", pd_timeout_s=5.0)
    port = prefill.pd.port
    assert port
    ids = tokenizer.encode(PROMPT)
    # the decode leg starts first and must wait for the room
    decode_task = asyncio.ensure_future(collect(decode, _sglang_leg("r", ids, port, 42)))
    p_ids, p_done, _ = await collect(prefill, _sglang_leg("r", ids, port, 42))
    d_ids, d_done, _ = await asyncio.wait_for(decode_task, 10)
    assert len(p_ids[0]) == 1 and p_done[0].finish_reason == "length"  # prefill: one token
    assert tokenizer.decode(d_ids[0]) == DEFAULT_CYCLE_TEXT
    assert d_done[0].finish_reason == "stop"
    assert d_done[0].prompt_tokens == len(ids)


async def test_sglang_style_room_zero_is_a_room(make_engine, tokenizer) -> None:
    prefill = await make_engine(role="prefill", bootstrap_port=0)
    decode = await make_engine(role="decode")
    ids = tokenizer.encode(PROMPT)
    await collect(prefill, _sglang_leg("p", ids, prefill.pd.port, 0))
    d_ids, _, _ = await collect(decode, _sglang_leg("d", ids, prefill.pd.port, 0, max_new_tokens=3))
    assert len(d_ids[0]) == 3


async def test_decode_without_matching_prefill_times_out(make_engine, tokenizer) -> None:
    prefill = await make_engine(role="prefill", bootstrap_port=0)
    decode = await make_engine(role="decode", pd_timeout_s=0.3)
    ids = tokenizer.encode(PROMPT)
    with pytest.raises(EngineError, match="no matching prefill for bootstrap room 7") as info:
        await collect(decode, _sglang_leg("d", ids, prefill.pd.port, 7))
    assert info.value.status_code == 504
    assert decode.loads()["num_running_reqs"] == 0


async def test_decode_for_a_different_prompt_is_a_mismatch(make_engine, tokenizer) -> None:
    prefill = await make_engine(role="prefill", bootstrap_port=0)
    decode = await make_engine(role="decode")
    await collect(prefill, _sglang_leg("p", tokenizer.encode(PROMPT), prefill.pd.port, 9))
    with pytest.raises(EngineError, match="different prompt") as info:
        await collect(decode, _sglang_leg("d", tokenizer.encode("other"), prefill.pd.port, 9))
    assert info.value.status_code == 409


async def test_legs_without_bootstrap_params_are_rejected(make_engine, tokenizer) -> None:
    prefill = await make_engine(role="prefill", bootstrap_port=0)
    decode = await make_engine(role="decode")
    ids = tokenizer.encode(PROMPT)
    with pytest.raises(EngineError, match="prefill worker needs"):
        await collect(prefill, request("p", ids))
    with pytest.raises(EngineError, match="decode worker needs"):
        await collect(decode, request("d", ids))


async def test_vllm_style_prefill_returns_params_decode_requires_them(make_engine, tokenizer) -> None:
    prefill = await make_engine(role="prefill", pd_style="vllm", bootstrap_port=0)
    decode = await make_engine(role="decode", pd_style="vllm")
    ids = tokenizer.encode(PROMPT)
    _, p_done, _ = await collect(prefill, request("pre-1", ids, max_new_tokens=1, stream=False))
    params = p_done[0].kv_transfer_params
    assert params["do_remote_prefill"] is True
    assert (params["remote_host"], params["remote_port"]) == ("127.0.0.1", prefill.pd.port)
    assert params["remote_request_id"] == "pre-1"
    assert params["remote_engine_id"] == prefill.pd.engine_id
    leg = request("dec-1", ids, max_new_tokens=4)
    leg.kv_transfer_params = params
    d_ids, d_done, _ = await collect(decode, leg)
    assert len(d_ids[0]) == 4 and d_done[0].finish_reason == "length"
    with pytest.raises(EngineError, match="needs kv_transfer_params") as info:
        await collect(decode, request("dec-2", ids))
    assert info.value.status_code == 400
    stale = request("dec-3", ids)
    stale.kv_transfer_params = {**params, "remote_request_id": "never-prefilled"}
    decode.pd.timeout = 0.2
    with pytest.raises(EngineError, match="no matching prefill for transfer never-prefilled"):
        await collect(decode, stale)


async def test_server_info_names_the_pd_role(make_engine) -> None:
    prefill = await make_engine(role="prefill", pd_style="vllm", bootstrap_port=0)
    info = prefill.server_info()
    assert (info["kv_role"], info["kv_connector"]) == ("kv_producer", "NixlConnector")
    assert info["bootstrap_port"] == prefill.pd.port


async def test_room_board_waiters_and_fetch_without_server() -> None:
    board = RoomBoard(max_rooms=2)
    waiter = asyncio.ensure_future(board.wait("k", 5))
    await asyncio.sleep(0)
    board.publish("k", {"v": 1})
    assert await waiter == {"v": 1}
    assert await board.wait("missing", 0.01) is None
    board.publish("a", {})
    board.publish("b", {})
    assert await board.wait("k", 0) is None  # the oldest room was forgotten
    # nothing listens on the port: fetch retries until its timeout, then None
    from tests.conftest import free_port

    assert await fetch_room("127.0.0.1", free_port(), "x", 0.2) is None


async def test_abort_reaches_a_decode_leg_still_waiting_for_its_prefill(make_engine, unused_port) -> None:
    # No prefill ever answers on this port, and the rendezvous would wait 60 s: the
    # abort must end the request at once (a retried pair may reuse the request id).
    engine = await make_engine(role="decode", pd_style="sglang", pd_timeout_s=60.0)
    inp = request("waiting-1", [1, 2, 3], max_new_tokens=4)
    inp.bootstrap_host, inp.bootstrap_port, inp.bootstrap_room = "127.0.0.1", unused_port, 7
    task = asyncio.ensure_future(collect(engine, inp))
    from _engine_testlib import wait_until

    await wait_until(lambda: "waiting-1" in engine._requests)
    assert engine.abort("waiting-1")
    _ids, done, _chunks = await asyncio.wait_for(task, 10)
    assert done[0].finish_reason == "abort"
    assert "waiting-1" in engine.aborted_rids
