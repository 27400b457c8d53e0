"""radix kernel: the compiled tree beside its Python twin, same run, same workload.

Workload (kernels.md D2): prompts of 1 KB or 8 KB of mixed text (50% English prose, 20%
code, 10% zh, 5% ja, 10% ru, 5% emoji); each starts with one of 32 shared system prompts
(25% of its length); 40% continue an earlier conversation (its first 85% plus new text).
Routing as SMG: match, then the matched worker if matched/len > 0.5, else the least
loaded one; then insert for that worker. The trees are warmed with WARM requests; then
in each of ROUNDS rounds every variant (C and twin, 8 and 64 workers) routes the same
BATCH new requests, in a rotating order so that the machine's load falls on all alike;
the figure is CPU time per request in the fastest round.

Run (the table in benchmarks/README.md came from this command)::

    python -m pytest benchmarks/test_bench_radix.py -q -s --benchmark-disable-gc \
        --benchmark-timer=time.process_time --benchmark-columns=median,rounds

(process time, not wall time: the shared 2-core machine is loaded by other jobs; the
two-thread test measures wall time itself.)

``SMG_BENCH_RADIX_WARM`` (default 10000) sets the warm-up size. Ratios are printed at
the end of the module ("radix ratios"), and attached to each benchmark's extra_info.
"""

from __future__ import annotations

import gc
import gettext
import glob
import hashlib
import itertools
import os
import random
import threading
import time
import tracemalloc
from array import array
from collections.abc import Callable, Iterator
from typing import Any
from pathlib import Path

import pytest

from smg._fast import NO_EXTENSIONS, radix_py

pytest.importorskip("pytest_benchmark")
if NO_EXTENSIONS:
    pytest.skip("SMG_NO_EXTENSIONS=1: nothing compiled to compare", allow_module_level=True)
from smg._fast import radix_c  # noqa: E402

WARM = int(os.environ.get("SMG_BENCH_RADIX_WARM", "10000"))
BATCH = 250
ROUNDS = 9
IMPLS = {"c": radix_c, "py": radix_py}
RESULTS: dict[tuple[str, ...], float] = {}


# ---- workload ------------------------------------------------------------------------


def _corpus() -> dict[str, str]:
    import pydoc_data.topics

    out = {"en": " ".join(pydoc_data.topics.topics.values())}
    code_dir = Path(os.__file__).parent
    sources = sorted(code_dir.glob("[a-m]*.py"))[:40]
    out["code"] = "".join(p.read_text("utf-8", "replace") for p in sources)
    for lang, pattern in (("zh", "zh_CN"), ("ja", "ja"), ("ru", "ru")):
        texts: list[str] = []
        for mo in sorted(glob.glob(f"/usr/share/locale/{pattern}/LC_MESSAGES/*.mo"))[:30]:
            try:
                with open(mo, "rb") as f:
                    cat = gettext.GNUTranslations(f)._catalog
            except Exception:
                continue
            texts.extend(v for v in cat.values() if isinstance(v, str))
        out[lang] = " ".join(texts) or "".join(chr(0x4E00 + i % 2000) for i in range(50000))
    rnd = random.Random(7)
    emoji = ["😀", "👍🏽", "👨‍👩‍👧", "🇯🇵", "é", "ñ", "中", "∑"]
    out["emoji"] = "".join(rnd.choice(emoji) + rnd.choice(" ab") for _ in range(20000))
    return out


_MIX = [("en", 0.5), ("code", 0.2), ("zh", 0.1), ("ja", 0.05), ("ru", 0.1), ("emoji", 0.05)]


def _text(rnd: random.Random, corpus: dict[str, str], n: int) -> str:
    parts, size = [], 0
    while size < n:
        lang = rnd.choices([m[0] for m in _MIX], [m[1] for m in _MIX])[0]
        src = corpus[lang]
        take = min(n - size, rnd.randint(64, 512))
        start = rnd.randrange(0, len(src) - take)
        parts.append(src[start : start + take])
        size += take
    return "".join(parts)


def _prompts(size: int, count: int, seed: int = 1, ascii_only: bool = False) -> list[str]:
    rnd = random.Random(seed)
    corpus = _corpus()
    if ascii_only:  # English prose and code only, non-ASCII characters dropped
        corpus = {k: corpus[k].encode("ascii", "ignore").decode() for k in ("en", "code")}
        corpus.update({k: corpus["en"] for k in ("zh", "ja", "ru", "emoji")})
    systems = [_text(rnd, corpus, size // 4) for _ in range(32)]
    out: list[str] = []
    for _ in range(count):
        if out and rnd.random() < 0.4:
            prev = rnd.choice(out)
            keep = prev[: int(len(prev) * 0.85)]
            out.append(keep + _text(rnd, corpus, size - len(keep)))
        else:
            sys_prompt = rnd.choice(systems)
            out.append(sys_prompt + _text(rnd, corpus, size - len(sys_prompt)))
    return out


class _Router:
    """SMG cache_aware without the imbalance check: the matched worker if matched/len >
    0.5, else the least loaded one (round robin: every request weighs the same here)."""

    def __init__(self, tree: Any, workers: int) -> None:
        self.tree = tree
        self.names = [f"http://worker-{i}:8000" for i in range(workers)]
        self._next = itertools.cycle(self.names).__next__

    def route(self, key: str) -> str:  # match + insert (two descents, D2's operation)
        matched, tenant = self.tree.match(key)
        name = tenant if tenant is not None and matched / len(key) > 0.5 else self._next()
        self.tree.insert(key, name)
        return name

    def route_all(self, key: str) -> str:  # score every worker in one descent, then insert
        _, lens = self.tree.match_tenants(key)
        best = max(lens, key=lens.__getitem__) if lens else None
        name = best if best is not None and lens[best] / len(key) > 0.5 else self._next()
        self.tree.insert(key, name)
        return name


_CACHE: dict[tuple[int, str], list] = {}


def _workload(size: int, variant: str = "mixed") -> list:
    """Prompts: "mixed" text, "ascii" text, or "tokens" (array('I') of every 3rd
    character's code point of the mixed prompts: ~size/3 ids, same prefix structure)."""
    if (size, variant) not in _CACHE:
        count = WARM + BATCH * (ROUNDS + 4)
        if variant == "tokens":
            ids = [array("I", p[::3].encode("utf-32-le")) for p in _workload(size)]
            _CACHE[(size, variant)] = ids
        else:
            _CACHE[(size, variant)] = _prompts(size, count, ascii_only=variant == "ascii")
    return _CACHE[(size, variant)]


def _warm(impl: str, size: int, workers: int, variant: str = "mixed") -> _Router:
    prompts = _workload(size, variant)
    kind, page = ("tokens", 16) if variant == "tokens" else ("text", 1)
    tree = IMPLS[impl].RadixTree(kind, page)
    router = _Router(tree, workers)
    for p in prompts[:WARM]:
        router.route(p)
    return router


def _copies(batch: list) -> list:
    """New objects, as a gateway gets them (a str has no UTF-8 cached inside yet)."""
    if batch and isinstance(batch[0], str):
        return [(p + " ")[:-1] for p in batch]
    if batch and isinstance(batch[0], bytes):
        return [bytes(bytearray(p)) for p in batch]
    return [array("I", p) for p in batch]


def _interleaved(
    variants: dict[str, Callable[[list], object]], batches: Iterator[list]
) -> dict[str, float]:
    """Seconds per request of each variant, fastest of ROUNDS rounds. Every round hands
    each variant the same new batch, in a rotating order, so the machine's load falls on
    all of them alike (stateful variants see the same sequence of requests)."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(ROUNDS):
        batch = next(batches)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            keys = _copies(batch)
            gc.collect()
            t0 = time.process_time()
            variants[name](keys)
            times[name].append((time.process_time() - t0) / len(batch))
    return {name: min(t) for name, t in times.items()}


def _loop(fn: Callable[[object], object]) -> Callable[[list], None]:
    def run(keys: list) -> None:
        for k in keys:
            fn(k)

    return run


def _table(benchmark: Any, fn: Callable[[object], object], batches: Iterator[list]) -> None:
    """A few more rounds of one variant through pytest-benchmark, for its table."""
    benchmark.pedantic(
        _loop(fn), setup=lambda: ((_copies(next(batches)),), {}), rounds=3, iterations=1
    )


@pytest.fixture(scope="module", autouse=True)
def _report(pytestconfig: pytest.Config) -> Iterator[None]:
    yield
    tr = pytestconfig.pluginmanager.getplugin("terminalreporter")
    write: Callable[[str], None] = tr.write_line if tr else print
    write("")
    write("radix ratios (CPU time per request, fastest round; py/c = compiled tree's speed-up)")
    for (op, impl, size, workers), c in sorted(RESULTS.items()):
        py = RESULTS.get((op, "py", size, workers))
        if impl == "c" and py and op not in ("memory", "threads", "evict"):
            write(f"  {op:14s} {int(size) // 1024} KB / {workers:>2s} workers: "
                  f"c {c * 1e6:7.2f} us  py {py * 1e6:7.2f} us  py/c {py / c:5.2f}")
    for op in ("route", "route_all"):
        for size in ("1024", "8192"):
            c8, c64 = RESULTS.get((op, "c", size, "8")), RESULTS.get((op, "c", size, "64"))
            if c8 and c64:
                kb = int(size) // 1024
                write(f"  {op:14s} {kb} KB: c 64 workers / 8 workers = {c64 / c8:5.3f}")
    for key, value in sorted(RESULTS.items()):
        if key[0] in ("memory", "threads", "evict"):
            write(f"  {' '.join(key)}: {value:.3f}")
    write(f"  load average at the end: {os.getloadavg()[0]:.1f}")


# ---- benchmarks ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [1024, 8192])
@pytest.mark.parametrize("op", ["route", "route_all"])
def test_route(benchmark: Any, op: str, size: int) -> None:
    """match + insert (or score every worker + insert): C and twin, 8 and 64 workers."""
    routers = {(impl, w): _warm(impl, size, w) for impl in ("c", "py") for w in (8, 64)}
    batches = _warm_batches(size)
    variants = {f"{impl} {w}": _loop(getattr(r, op)) for (impl, w), r in routers.items()}
    for name, t in _interleaved(variants, batches).items():
        impl, w = name.split()
        RESULTS[(op, impl, str(size), w)] = t
    for r in routers.values():
        r.tree.check()
    _table(benchmark, getattr(routers[("c", 8)], op), batches)


@pytest.mark.parametrize("size", [1024, 8192])
def test_match(benchmark: Any, size: int) -> None:
    """match alone and scoring every worker in one descent (8 workers)."""
    trees = {impl: _warm(impl, size, 8).tree for impl in ("c", "py")}
    ops = ("match", "match_tenants")
    variants = {f"{op} {impl}": _loop(getattr(t, op)) for impl, t in trees.items() for op in ops}
    for name, t in _interleaved(variants, _warm_batches(size)).items():
        op, impl = name.split()
        RESULTS[(op, impl, str(size), "8")] = t
    _table(benchmark, trees["c"].match, _warm_batches(size))


@pytest.mark.parametrize("variant", ["ascii", "tokens"])
def test_route_variant(benchmark: Any, variant: str) -> None:
    """match + insert, 8 workers: ASCII-only 8 KB prompts (no UTF-8 conversion), and
    token ids (array('I'), ~2,700 per request, page_size 16 as SMG's token tree)."""
    routers = {impl: _warm(impl, 8192, 8, variant) for impl in ("c", "py")}
    batches = _warm_batches(8192, variant)
    for impl, t in _interleaved({i: _loop(r.route) for i, r in routers.items()}, batches).items():
        RESULTS[(f"route {variant}", impl, "8192", "8")] = t
    _table(benchmark, routers["c"].route, batches)


def _warm_batches(size: int, variant: str = "mixed") -> Iterator[list]:
    rest = _workload(size, variant)[WARM:]
    return iter([rest[i : i + BATCH] for i in range(0, len(rest) - BATCH + 1, BATCH)])


@pytest.mark.parametrize("size", [1024, 8192])
def test_memory(benchmark: Any, size: int) -> None:
    """Bytes per stored byte and per node: C (its own count) and the twin (tracemalloc)."""
    router = _warm("c", size, 8)
    tree = router.tree
    mem, stored, nodes = tree.memory_bytes(), tree.stored_bytes(), tree.node_count()
    RESULTS[("memory", "c", str(size), "bytes/stored byte")] = mem / stored
    RESULTS[("memory", "c", str(size), "bytes over stored/node")] = (mem - stored) / nodes
    RESULTS[("memory", "c", str(size), "bytes over 1.2*stored/node")] = (mem - 1.2 * stored) / nodes
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    py_router = _warm("py", size, 8)
    py_mem = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    py_stored = py_router.tree.stored_bytes()
    RESULTS[("memory", "py", str(size), "bytes/stored byte")] = py_mem / py_stored
    benchmark.extra_info.update({"c_bytes_per_stored": mem / stored, "nodes": nodes})
    benchmark(tree.node_count)


def _parallel(fn: Callable[[object], object], keys: list, threads: int, reps: int) -> float:
    """Wall seconds for `threads` threads to each call fn reps times over their own copy
    of keys (distinct objects, nothing shared between the threads)."""
    start = threading.Barrier(threads + 1)
    copies = [_copies(keys) for _ in range(threads)]

    def work(mine: list) -> None:
        start.wait()
        for _ in range(reps):
            for k in mine:
                fn(k)

    ts = [threading.Thread(target=work, args=(copies[i],)) for i in range(threads)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    return time.perf_counter() - t0


def _speedup(fn: Callable[[object], object], keys: list) -> float:
    """2-thread / 1-thread throughput (median of 7 alternating pairs)."""
    one, two = [], []
    for _ in range(7):
        one.append(_parallel(fn, keys, 1, 4) / 4)
        two.append(_parallel(fn, keys, 2, 4) / 8)
    return sorted(one)[3] / sorted(two)[3]


@pytest.mark.parametrize("size", [8192])
def test_two_threads(benchmark: Any, size: int) -> None:
    """Match throughput of 2 threads vs 1 on the compiled tree (wall clock), beside the
    same measurement of hashlib.sha256 (C that releases the GIL for all its work) on
    buffers of the same size: what this machine allows at the moment."""
    router = _warm("c", size, 8)
    keys = _workload(size)[WARM : WARM + 200]
    speedup = _speedup(router.tree.match, keys)
    RESULTS[("threads", "c", str(size), "2-thread/1-thread match throughput")] = speedup
    blobs = [k.encode() for k in keys]
    RESULTS[("threads", "sha256", str(size), "2-thread/1-thread throughput")] = _speedup(
        lambda b: hashlib.sha256(b).digest(), blobs
    )
    benchmark(router.tree.match, keys[0])


@pytest.mark.parametrize("impl", ["c", "py"])
def test_evict(benchmark: Any, impl: str) -> None:
    """Evict every tenant to half its size (1 KB prompts, 8 workers)."""
    router = _warm(impl, 1024, 8)
    tree = router.tree
    budget = sum(tree.tenant_sizes().values()) // 16
    nodes = tree.node_count()
    t0 = time.process_time()
    tree.evict(budget)
    RESULTS[("evict", impl, "1024", "ms per 10k nodes evicted")] = (
        (time.process_time() - t0) * 1e3 / max(1, nodes - tree.node_count()) * 1e4
    )
    benchmark(tree.evict, budget)
