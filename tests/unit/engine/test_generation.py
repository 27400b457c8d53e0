"""What the reference engine generates: modes, sampling params that change the output."""

from __future__ import annotations

import json

import pytest
from _engine_testlib import collect, request

from smg.engine.config import DEFAULT_CYCLE_TEXT, WorkerConfig
from smg.engine.core import EngineError

PROMPT = "You are a helpful assistant. Tell me about foxes."


async def test_cycle_mode_emits_the_text_then_eos(make_engine, tokenizer) -> None:
    engine = await make_engine()
    prompt = tokenizer.encode(PROMPT)
    ids, done, chunks = await collect(engine, request("a", prompt))
    eos = tokenizer.eos_token_ids[0]
    assert ids[0][-1] == eos
    assert tokenizer.decode(ids[0]) == DEFAULT_CYCLE_TEXT
    fin = done[0]
    assert (fin.finish_reason, fin.matched_stop) == ("stop", eos)
    assert fin.completion_tokens == len(ids[0]) and fin.prompt_tokens == len(prompt)
    assert fin.output_ids == ids[0]
    # one token per chunk by default, with running counts
    assert [c.completion_tokens for c in chunks] == list(range(1, len(ids[0]) + 1))
    assert all(c.prompt_tokens == len(prompt) for c in chunks)


async def test_max_new_tokens_ends_with_length(make_engine, tokenizer) -> None:
    engine = await make_engine()
    ids, done, _ = await collect(engine, request("a", tokenizer.encode(PROMPT), max_new_tokens=5))
    assert len(ids[0]) == 5
    assert (done[0].finish_reason, done[0].matched_stop) == ("length", None)
    full = tokenizer.encode(DEFAULT_CYCLE_TEXT)
    assert ids[0] == full[:5]


async def test_ignore_eos_keeps_going_past_the_text(make_engine, tokenizer) -> None:
    engine = await make_engine()
    full = tokenizer.encode(DEFAULT_CYCLE_TEXT)
    n = len(full) * 2 + 3
    ids, done, _ = await collect(
        engine, request("a", tokenizer.encode(PROMPT), max_new_tokens=n, ignore_eos=True)
    )
    eos = tokenizer.eos_token_ids[0]
    assert ids[0] == (full + [eos]) * 2 + full[:1]
    assert done[0].finish_reason == "length"


async def test_min_new_tokens_skips_an_early_eos(make_engine, tokenizer) -> None:
    engine = await make_engine()
    full = tokenizer.encode(DEFAULT_CYCLE_TEXT)
    eos = tokenizer.eos_token_ids[0]
    ids, done, _ = await collect(
        engine, request("a", tokenizer.encode(PROMPT), min_new_tokens=len(full) + 2)
    )
    assert ids[0] == full + [eos] + full + [eos]
    assert done[0].finish_reason == "stop"


async def test_stop_token_ids_stop_at_the_first_occurrence(make_engine, tokenizer) -> None:
    engine = await make_engine()
    full = tokenizer.encode(DEFAULT_CYCLE_TEXT)
    stop = full[6]
    first = full.index(stop)
    ids, done, _ = await collect(engine, request("a", tokenizer.encode(PROMPT), stop_token_ids=(stop,)))
    assert ids[0] == full[: first + 1]
    assert (done[0].finish_reason, done[0].matched_stop) == ("stop", stop)


async def test_stop_string_ends_generation(make_engine, tokenizer) -> None:
    engine = await make_engine()
    ids, done, _ = await collect(engine, request("a", tokenizer.encode(PROMPT), stop=("lazy",)))
    assert (done[0].finish_reason, done[0].matched_stop) == ("stop", "lazy")
    assert tokenizer.decode(ids[0]).endswith("lazy")


async def test_n_choices_each_get_chunks_and_a_finish(make_engine, tokenizer) -> None:
    engine = await make_engine()
    ids, done, _ = await collect(engine, request("a", tokenizer.encode(PROMPT), n=3, max_new_tokens=4))
    assert sorted(done) == [0, 1, 2]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 4


async def test_non_streaming_sends_one_chunk_per_choice(make_engine, tokenizer) -> None:
    engine = await make_engine()
    ids, done, chunks = await collect(engine, request("a", tokenizer.encode(PROMPT), stream=False))
    assert len(chunks) == 1 and chunks[0].token_ids == done[0].output_ids


async def test_stream_interval_groups_tokens(make_engine, tokenizer) -> None:
    engine = await make_engine(stream_interval=4)
    _, _, chunks = await collect(engine, request("a", tokenizer.encode(PROMPT), max_new_tokens=10))
    assert [len(c.token_ids) for c in chunks] == [4, 4, 2]


async def test_echo_mode_returns_the_prompt(make_engine, tokenizer) -> None:
    engine = await make_engine(mode="echo")
    prompt = tokenizer.encode(PROMPT)
    ids, done, _ = await collect(engine, request("a", prompt))
    assert ids[0] == prompt + [tokenizer.eos_token_ids[0]]
    assert done[0].finish_reason == "stop"


async def test_logprobs_come_per_token(make_engine, tokenizer) -> None:
    engine = await make_engine()
    inp = request("a", tokenizer.encode(PROMPT), max_new_tokens=6)
    inp.return_logprob, inp.top_logprobs = True, 2
    _, _, chunks = await collect(engine, inp)
    for c in chunks:
        assert c.logprobs is not None and len(c.logprobs) == len(c.token_ids)
        assert all(lp <= 0 for lp in c.logprobs)
        assert c.top_logprobs is not None and all(len(alts) == 2 for alts in c.top_logprobs)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
async def test_script_mode_first_matching_rule_wins(make_engine, tokenizer, tmp_path, suffix) -> None:
    rules = [
        {"match": "weather", "output": "<think>check the tool</think>It is sunny."},
        {"match": "sunny|weather", "output": "never: the first match wins"},
        {"match": "foxes", "output": "Foxes are small omnivores."},
    ]
    path = tmp_path / f"script{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(rules))
    else:
        import yaml

        path.write_text(yaml.safe_dump({"rules": rules}))
    engine = await make_engine(mode="script", script=str(path))

    async def text(prompt: str) -> str:
        ids, _, _ = await collect(engine, request(prompt, tokenizer.encode(prompt)))
        return tokenizer.decode(ids[0], skip_special_tokens=True)

    assert await text("what is the weather like") == rules[0]["output"]
    assert await text("tell me about foxes") == rules[2]["output"]
    assert await text("something else entirely") == DEFAULT_CYCLE_TEXT


def test_a_bad_script_is_a_clear_error(tmp_path) -> None:
    from smg.engine.generation import load_script

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"match": "(", "output": "x"}]))
    with pytest.raises(ValueError, match="rule 0 has a bad regex"):
        load_script(str(bad))
    bad.write_text(json.dumps({"no": "rules"}))
    with pytest.raises(ValueError, match="list of"):
        load_script(str(bad))
    with pytest.raises(ValueError, match="needs --script"):
        WorkerConfig(mode="script")


@pytest.mark.parametrize(
    ("ids", "kw", "match"),
    [
        ([], {}, "must not be empty"),
        ([1, 2, 10**9], {}, "outside the vocabulary"),
        ([1] * 40, {"context_length": 32}, "exceeds the context length"),
    ],
)
async def test_bad_input_is_a_400(make_engine, ids, kw, match) -> None:
    engine = await make_engine(**kw)
    with pytest.raises(EngineError, match=match) as info:
        await collect(engine, request("a", ids))
    assert info.value.status_code == 400


async def test_duplicate_request_id_is_rejected_while_running(make_engine, tokenizer) -> None:
    engine = await make_engine(fault="stall", fault_after_tokens=1)
    gen = engine.generate(request("dup", tokenizer.encode(PROMPT)))
    await gen.__anext__()
    with pytest.raises(EngineError, match="duplicate request id"):
        await collect(engine, request("dup", tokenizer.encode(PROMPT)))
    assert engine.abort("dup")
    rest = [item async for item in gen]
    assert rest[-1].finish_reason == "abort"
