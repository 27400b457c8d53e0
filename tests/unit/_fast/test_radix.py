"""radix: API and edge cases of the multi-tenant prefix tree (both twins)."""

from __future__ import annotations

import importlib
from array import array

import pytest

from smg._fast import NO_EXTENSIONS
from tests.conftest import kernel_impls

impls = pytest.mark.parametrize("impl", kernel_impls("radix"))


def tree(impl, kind="text", page_size=1):
    return impl.module.RadixTree(kind, page_size)


def test_chooser_reports_its_implementation():
    radix = importlib.import_module("smg._fast.radix")
    assert radix.IMPLEMENTATION == ("python" if NO_EXTENSIONS else "cython")
    assert importlib.import_module("smg._fast").implementation()["radix"] == radix.IMPLEMENTATION


@impls
def test_empty_tree_and_empty_key(impl):
    t = tree(impl)
    assert t.match("") == (0, None)
    assert t.match("abc") == (0, None)
    assert t.match_tenants("") == (0, {})
    assert t.match_insert("", "w1") == {}
    t.insert("", "w2")  # an empty insert registers the worker, as SMG's "add worker"
    assert t.tenants() == ["w1", "w2"]
    assert t.tenant_sizes() == {"w1": 0, "w2": 0}
    assert t.node_count() == 0
    assert (t.kind, t.page_size) == ("text", 1)
    t.check()


@impls
def test_match_returns_length_and_tenant_mid_edge(impl):
    t = tree(impl)
    t.insert("hello world", "a")
    assert t.match("hello world") == (11, "a")
    assert t.match("hello world, again") == (11, "a")
    assert t.match("hello there") == (6, "a")  # ends inside the edge: no split on match
    assert t.node_count() == 1
    assert t.match("xyz") == (0, None)
    assert t.match("h") == (1, "a")


@impls
def test_split_and_every_tenants_length(impl):
    t = tree(impl)
    t.insert("abcdef", "a")
    t.insert("abcxyz", "b")
    assert t.node_count() == 3  # "abc" -> {"def", "xyz"}
    assert t.match("abcdef") == (6, "a")
    assert t.match("abcxyz!") == (6, "b")
    assert t.match("abc") == (3, "b")  # both hold "abc"; b inserted last
    assert t.match_tenants("abcdefgh") == (8, {"a": 6, "b": 3})
    assert t.match_tenants("abq") == (3, {"a": 2, "b": 2})
    assert t.tenant_sizes() == {"a": 6, "b": 6}
    t.check()


@impls
def test_most_recent_tenant_wins_and_match_is_read_only(impl):
    t = tree(impl)
    t.insert("shared prefix", "a")
    t.insert("shared prefix", "b")
    assert t.match("shared prefix") == (13, "b")
    t.insert("shared", "a")  # touches the upper part only for a
    assert t.match("shared") == (6, "a")
    assert t.match("shared prefix") == (13, "b")
    for _ in range(5):
        t.match("shared prefix")
        t.match_tenants("shared prefix")
    assert t.match("shared prefix") == (13, "b")


@impls
def test_match_insert_reports_lengths_before_inserting(impl):
    t = tree(impl)
    assert t.match_insert("system: be brief. user: hi", "a") == {}
    assert t.match_insert("system: be brief. user: hello", "b") == {"a": 25}
    assert t.match_insert("system: be brief. user: hi", "b") == {"a": 26, "b": 25}
    assert t.match_insert("system: other", "c") == {"a": 8, "b": 8}
    assert t.match("system: be brief. user: hi") == (26, "b")
    assert t.tenants() == ["a", "b", "c"]
    t.check()


@impls
def test_utf8_splits_are_reported_in_characters(impl):
    t = tree(impl)
    t.insert("héllo", "a")  # é = C3 A9
    t.insert("hèllo", "b")  # è = C3 A8: shares a byte with é but not a character
    assert t.node_count() == 3  # "h" -> {"éllo", "èllo"}
    assert t.match("héllo") == (5, "a")
    assert t.match("hèlp") == (3, "b")
    assert t.match("hê") == (1, "b")
    assert t.match_tenants("héllo wörld") == (11, {"a": 5, "b": 1})
    assert t.tenant_sizes() == {"a": 5, "b": 5}
    t.insert("中文", "c")  # E4 B8 AD
    t.insert("丫头", "d")  # E4 B8 AB: two shared bytes, no shared character
    assert t.match("中") == (1, "c")
    assert t.match("丫") == (1, "d")
    assert t.match("丙") == (0, None)  # E4 B8 99
    t.insert("😀😁", "e")
    t.insert("😀😂", "e")
    assert t.match("😀😃") == (1, "e")
    assert t.tenant_size("e") == 3
    assert t.stored_bytes() == len("hélloèllo中文丫头😀😁😂".encode())
    t.check()


@impls
def test_utf8_of_every_str_width(impl):
    """Latin-1, UCS-2 and UCS-4 strs with ASCII runs around the 8/16-char block sizes."""
    for wide in ("é", "ÿ", "中", "\ud800", "😀"):
        for run in (1, 7, 8, 9, 15, 16, 17, 40):
            s = ("a" * run + wide) * 3 + "b" * run
            t = tree(impl)
            t.insert(s, "a")
            assert t.stored_bytes() == len(s.encode("utf-8", "surrogatepass"))
            for j in range(0, len(s), 3):
                changed = s[:j] + ("Z" if s[j] != "Z" else "Y") + s[j + 1 :]
                assert t.match(changed) == (j, "a" if j else None), (wide, run, j)


@impls
def test_same_str_objects_interleaved(impl):
    """The compiled tree keeps the last str's UTF-8: reuse and replacement stay right."""
    t = tree(impl)
    k1 = "préfixe commun " * 100
    k2 = k1[:-5] + "autre"
    assert t.match(k1) == (0, None)
    t.insert(k1, "a")
    assert t.match(k2) == (len(k2) - 5, "a")
    assert t.match(k1) == (len(k1), "a")
    assert t.match_insert(k2, "b") == {"a": len(k2) - 5}
    assert t.match(k2) == (len(k2), "b")
    assert t.match_tenants(k1) == (len(k1), {"a": len(k1), "b": len(k2) - 5})


@impls
def test_text_key_errors(impl):
    t = tree(impl)
    with pytest.raises(TypeError):
        t.insert([1, 2], "a")
    with pytest.raises(TypeError):
        t.match(b"bytes")
    with pytest.raises(TypeError):
        t.insert("abc", 3)
    assert t.tenants() == []
    t.insert("lone \ud800 surrogate", "a")  # str may hold them: kept as characters
    t.insert("lone \udbff", "b")
    assert t.match("lone \ud800 surrogate!") == (16, "a")
    assert t.match_tenants("lone \ud800") == (6, {"a": 6, "b": 5})
    assert t.tenant_sizes() == {"a": 16, "b": 6}
    t.check()


@impls
def test_constructor_errors(impl):
    with pytest.raises(ValueError):
        impl.module.RadixTree("bytes")
    with pytest.raises(ValueError):
        impl.module.RadixTree("tokens", 0)
    with pytest.raises(ValueError):
        impl.module.RadixTree("text", 16)


@impls
def test_token_keys_in_every_form(impl):
    t = tree(impl, "tokens")
    t.insert([1, 2, 3, 4, 0xFFFFFFFF], "a")
    assert t.match(array("I", [1, 2, 3, 4, 0xFFFFFFFF, 9])) == (5, "a")
    assert t.match((1, 2, 3, 9)) == (3, "a")
    assert t.match(memoryview(array("I", [1, 2]))) == (2, "a")
    assert t.match(array("q", [1, 2, 3])) == (3, "a")  # not uint32: read as a sequence
    assert t.match_tenants([1, 2, 7, 7]) == (4, {"a": 2})
    assert t.tenant_size("a") == 5
    assert t.stored_bytes() == 20
    for bad, err in (("text", TypeError), ([1, -1], OverflowError), ([2**32], OverflowError),
                     ([1.0], TypeError), (5, TypeError)):
        with pytest.raises(err):
            t.insert(bad, "b")
    assert t.tenants() == ["a"]
    t.check()


@impls
def test_page_alignment(impl):
    t = tree(impl, "tokens", 4)
    assert t.page_size == 4
    t.insert(list(range(1, 11)), "a")  # 10 tokens: only the first 8 are kept
    assert t.tenant_size("a") == 8
    assert t.match(list(range(1, 11))) == (8, "a")
    assert t.match([1, 2, 3, 4, 5, 6, 7]) == (4, "a")  # 7 tokens: one whole page
    assert t.match([1, 2, 3]) == (0, None)  # shorter than a page
    assert t.match_tenants([1, 2, 3, 4, 5, 6, 0, 0, 9]) == (9, {"a": 4})
    t.insert([1, 2, 3, 4, 5, 6, 0, 0], "b")  # differs inside the 2nd page: split at 4
    assert t.node_count() == 3
    assert t.match([1, 2, 3, 4, 5, 6, 0, 0]) == (8, "b")
    t.insert([1, 2, 3, 9, 9, 9, 9, 9], "c")  # differs inside the first page: a sibling
    assert t.node_count() == 4
    assert t.match([1, 2, 3, 9, 9, 9, 9, 9]) == (8, "c")
    assert t.match([1, 2, 3, 4]) == (4, "b")
    t.insert([5, 5], "d")  # shorter than a page: registers only
    assert t.tenant_sizes() == {"a": 8, "b": 8, "c": 8, "d": 0}
    t.check()


def _three_keys(t, tenant):
    for k in ("aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc"):
        t.insert(k, tenant)


@impls
def test_evict_drops_each_tenants_oldest_leaves(impl):
    t = tree(impl)
    _three_keys(t, "a")
    t.insert("zzzzz", "b")
    assert t.evict(30) == 0
    assert t.evict(20) == 10
    assert t.match("aaaaaaaaaa") == (0, None)
    assert t.match("bbbbbbbbbb") == (10, "a")
    t.insert("bbbbbbbbbb", "a")  # touch b: c is now the oldest
    t.insert("dddddddddd", "a")
    assert t.evict(20) == 10
    assert t.match("cccccccccc") == (0, None)
    assert t.match("bbbbbbbbbb")[0] == t.match("dddddddddd")[0] == 10
    assert t.tenant_sizes() == {"a": 20, "b": 5}
    t.check()


@impls
def test_evict_is_per_tenant_on_shared_nodes(impl):
    t = tree(impl)
    t.insert("prefix-one", "a")
    t.insert("prefix-two", "b")
    t.insert("prefix-one", "b")
    assert t.evict(7) == 3 + 3 + 3  # a drops "one"; b drops "two" then "one"
    assert t.tenant_sizes() == {"a": 7, "b": 7}
    assert t.match_tenants("prefix-one") == (10, {"a": 7, "b": 7})
    assert t.node_count() == 1
    assert t.evict(0) == 14
    assert t.node_count() == 0
    assert t.tenants() == ["a", "b"]  # still registered
    with pytest.raises(ValueError):
        t.evict(-1)
    t.check()


@impls
def test_evict_parent_becomes_leaf_in_order(impl):
    t = tree(impl)
    t.insert("abcdef", "a")  # oldest
    t.insert("abcxyz", "a")
    t.insert("qqq", "a")  # newest
    # leaves by age: "def", "xyz", then "abc" (once both children are gone), "qqq"
    assert t.evict(9) == 3
    assert t.match_tenants("abcdef") == (6, {"a": 3})
    assert t.evict(6) == 3
    assert t.evict(3) == 3
    assert t.match("abc") == (0, None)
    assert t.match("qqq") == (3, "a")
    t.check()


@impls
def test_remove_tenant(impl):
    t = tree(impl)
    t.insert("shared start, a's end", "a")
    t.insert("shared start, b's end", "b")
    t.remove_tenant("a")
    t.remove_tenant("nobody")
    assert t.tenants() == ["b"]
    assert t.tenant_size("a") == 0
    assert t.match_tenants("shared start, a's end") == (21, {"b": 14})
    assert t.node_count() == 2
    t.insert("again", "a")
    assert t.tenant_sizes() == {"a": 5, "b": 21}
    t.check()


@impls
def test_clear(impl):
    t = tree(impl)
    t.insert("abc", "a")
    t.clear()
    assert (t.node_count(), t.tenants(), t.match("abc")) == (0, [], (0, None))
    t.insert("abd", "b")
    assert t.match("abc") == (2, "b")
    t.check()


@impls
def test_long_and_deep_keys(impl):
    t = tree(impl)
    long = "x" * 5000 + "é" * 3000  # past the GIL-release threshold
    t.insert(long, "a")
    assert t.match(long + "tail") == (8000, "a")
    assert t.match_insert(long[:6000] + "other", "b") == {"a": 6000}
    deep = tree(impl, "tokens")
    for i in range(1, 600):  # a chain 599 nodes deep
        deep.insert(list(range(i)), "a")
    assert deep.node_count() == 599
    assert deep.match(list(range(2000))) == (599, "a")
    assert deep.evict(100) == 499
    deep.check()
    deep.clear()
    assert t.stored_bytes() == len(long.encode()) + 5
    if impl.tag == "c":  # the C tree counts its own heap; edges are UTF-8 there
        assert t.memory_bytes() > t.stored_bytes()


@impls
def test_many_tenants(impl):
    t = tree(impl)
    for i in range(300):  # more than one machine word of tenants
        t.insert(f"common prefix {i:03d}", f"w{i}")
    _, lens = t.match_tenants("common prefix 12x")
    assert len(lens) == 300
    assert lens["w120"] == lens["w129"] == 16 and lens["w100"] == 15 and lens["w7"] == 14
    assert t.match("common prefix 299") == (17, "w299")
    for i in range(0, 300, 2):
        t.remove_tenant(f"w{i}")
    assert len(t.match_tenants("common")[1]) == 150
    t.check()
