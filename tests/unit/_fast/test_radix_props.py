"""radix properties: C against its Python twin, both against a brute-force oracle, threads."""

from __future__ import annotations

import random
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smg._fast import NO_EXTENSIONS, radix_py
from tests.conftest import kernel_impls

SHAPES = [("text", 1), ("tokens", 1), ("tokens", 3)]
TENANTS = st.sampled_from(["a", "b", "c", "d"])
PREFIXES = ["", "shared system prompt ", "shared sys", "héllo wörld 中文 ", "😀😁"]


def keys(kind: str) -> st.SearchStrategy:
    """Short keys over tiny alphabets (many shared prefixes, splits, multi-byte chars)."""
    if kind == "text":
        tail = st.text(alphabet="ab éè中丫😀😂\ud800\udfff", max_size=10)
        return st.builds(lambda p, t: p + t, st.sampled_from(PREFIXES), tail)
    ids = st.sampled_from([0, 1, 2, 7, 0xFFFFFFFF])
    head = st.sampled_from([[ord(c) for c in p[:6]] for p in PREFIXES])
    return st.builds(lambda p, t: p + t, head, st.lists(ids, max_size=10))


def op_strategy(kind: str) -> st.SearchStrategy:
    k = keys(kind)
    return st.one_of(
        st.tuples(st.just("insert"), k, TENANTS),
        st.tuples(st.just("match"), k),
        st.tuples(st.just("match_tenants"), k),
        st.tuples(st.just("match_insert"), k, TENANTS),
        st.tuples(st.just("evict"), st.integers(0, 40)),
        st.tuples(st.just("remove_tenant"), TENANTS),
        st.tuples(st.just("tenant_size"), TENANTS),
    )


@pytest.mark.c_extension
@pytest.mark.skipif(NO_EXTENSIONS, reason="SMG_NO_EXTENSIONS=1: no compiled twin to compare")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_compiled_tree_equals_python_twin(data):
    from smg._fast import radix_c

    kind, page = data.draw(st.sampled_from(SHAPES))
    c, py = radix_c.RadixTree(kind, page), radix_py.RadixTree(kind, page)
    for op in data.draw(st.lists(op_strategy(kind), max_size=40)):
        name, *args = op
        assert getattr(c, name)(*args) == getattr(py, name)(*args), op
        assert c.tenant_sizes() == py.tenant_sizes()
        assert c.node_count() == py.node_count()
    assert c.tenants() == py.tenants()
    assert c.stored_bytes() == py.stored_bytes()
    c.check()
    py.check()


@pytest.mark.c_extension
@pytest.mark.skipif(NO_EXTENSIONS, reason="SMG_NO_EXTENSIONS=1: no compiled encoder")
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "é", "ÿ", "ж", "中", "\ud800", "\udfff", "😀", "\U0010ffff"]),
                          st.integers(1, 20)), max_size=12))
def test_compiled_utf8_encoder_is_exact(runs):
    """Runs of one character class, around the 8/16-wide blocks of the SSE2 paths."""
    from smg._fast import radix_c

    s = "".join(c * n for c, n in runs)
    assert radix_c._utf8(s) == s.encode("utf-8", "surrogatepass")


def _common(a, b, page: int) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n - n % page


def _aligned(key, kind: str, page: int):
    return key if kind == "text" else tuple(key[: len(key) // page * page])


@pytest.mark.parametrize("impl", kernel_impls("radix"))
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_against_brute_force_oracle(impl, data):
    """Without eviction, every answer follows from the set of keys each tenant inserted."""
    kind, page = data.draw(st.sampled_from(SHAPES))
    t = impl.module.RadixTree(kind, page)
    held: dict[str, set] = {}
    ops = st.one_of(
        st.tuples(st.just("insert"), keys(kind), TENANTS),
        st.tuples(st.just("match_insert"), keys(kind), TENANTS),
        st.tuples(st.just("match"), keys(kind)),
        st.tuples(st.just("remove_tenant"), TENANTS),
    )
    for name, *args in data.draw(st.lists(ops, max_size=30)):
        if name == "remove_tenant":
            t.remove_tenant(args[0])
            held.pop(args[0], None)
            continue
        key = _aligned(args[0], kind, page)
        lens = {ten: max(_common(key, k, page) for k in ks) for ten, ks in held.items()}
        want = {ten: n for ten, n in lens.items() if n}
        assert t.match_tenants(args[0]) == (len(args[0]), want)
        if name == "match":
            matched, tenant = t.match(args[0])
            assert matched == max(want.values(), default=0)
            assert tenant is None if not want else want[tenant] == matched
        else:
            if name == "insert":
                t.insert(args[0], args[1])
            else:
                assert t.match_insert(args[0], args[1]) == want
            held.setdefault(args[1], set()).add(key)
    for ten, ks in held.items():
        prefixes = {k[:i] for k in ks for i in range(page, len(k) + 1, page)}
        assert t.tenant_size(ten) == len(prefixes) * page
    assert sorted(held) == t.tenants()
    t.check()


@pytest.mark.parametrize("impl", kernel_impls("radix"))
def test_two_threads_match_insert_evict(impl):
    """Concurrent match/insert/evict on long keys (GIL released in C): no crash, no error,
    and the tree is consistent afterwards."""
    t = impl.module.RadixTree("text")
    rnd = random.Random(5)
    bases = ["".join(rnd.choice("abcdefgé中") for _ in range(1500)) for _ in range(6)]
    errors: list[BaseException] = []
    start = threading.Barrier(2, timeout=30)

    def worker(seed: int, writer: bool) -> None:
        r = random.Random(seed)
        try:
            start.wait()
            for i in range(300):
                key = r.choice(bases)[: r.randint(1, 1500)] + str(r.random())
                tenant = f"w{r.randint(0, 9)}"
                if writer:
                    t.match_insert(key, tenant) if i % 2 else t.insert(key, tenant)
                else:
                    t.match(key)
                    t.match_tenants(key)
                    t.insert(key, tenant)
                    if i % 25 == 0:
                        t.evict(3000)
                    if i % 100 == 99:
                        t.remove_tenant(tenant)
                        t.tenant_sizes()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s, s == 0)) for s in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads)
    assert errors == []
    t.check()
    assert t.node_count() > 0
    before = t.tenant_sizes()
    assert t.evict(3000) >= 0
    assert all(size <= 3000 for size in t.tenant_sizes().values())
    assert set(before) == set(t.tenants())
