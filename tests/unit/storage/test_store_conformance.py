"""The HistoryStore contract, the same on every backend (memory, sqlite, postgres, redis):
responses whole with compare-and-set, chains, conversations, items and their paging."""

from __future__ import annotations

from smg.storage import Conversation, HistoryStore, ItemPage, StoredResponse


def response(rid: str, status: str = "completed", prev: str | None = None, conv: str | None = None,
             text: str = "hi") -> StoredResponse:
    body = {"id": rid, "object": "response", "status": status, "created_at": 1700000000,
            "output": [{"type": "message", "id": f"msg_{rid}", "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4}, "metadata": {"k": "v"},
            "temperature": 0.7, "top_p": None, "parallel_tool_calls": True}
    items = [{"type": "message", "id": f"in_{rid}", "role": "user",
              "content": [{"type": "input_text", "text": f"question {rid} — ünïcødé ✓ 🙂"}]}]
    return StoredResponse(rid, 1700000000, body, items, prev, conv)


def item(iid: str, n: int = 0) -> dict:
    return {"type": "message", "id": iid, "role": "user", "status": "completed",
            "content": [{"type": "input_text", "text": f"item {iid} #{n}"}]}


def ids(page: ItemPage | None) -> list[str]:
    assert page is not None
    return [i["id"] for i in page.items]


async def test_response_round_trip_replace_delete(store: HistoryStore) -> None:
    assert await store.get_response("resp_unknown") is None
    assert await store.delete_response("resp_unknown") is False
    rec = response("resp_1", prev="resp_0", conv="conv_1")
    assert await store.put_response(rec) is True
    got = await store.get_response("resp_1")
    assert got == rec and got is not rec
    assert got.status == "completed"
    got.body["status"] = "mutated"  # a copy: the stored one is untouched
    assert (await store.get_response("resp_1")).status == "completed"

    replaced = response("resp_1", status="incomplete", text="other")
    assert await store.put_response(replaced) is True
    assert await store.get_response("resp_1") == replaced

    assert await store.delete_response("resp_1") is True
    assert await store.get_response("resp_1") is None
    assert await store.delete_response("resp_1") is False


async def test_put_response_compare_and_set(store: HistoryStore) -> None:
    # unknown id: nothing to compare with, nothing written
    assert await store.put_response(response("resp_bg", status="completed"), if_status="in_progress") is False
    assert await store.get_response("resp_bg") is None

    await store.put_response(response("resp_bg", status="in_progress"))
    assert await store.put_response(response("resp_bg", status="completed"), if_status="queued") is False
    assert (await store.get_response("resp_bg")).status == "in_progress"
    # cancel wins; the late completion that expected in_progress is refused
    assert await store.put_response(response("resp_bg", status="cancelled"), if_status="in_progress") is True
    assert await store.put_response(response("resp_bg", status="completed", text="late"),
                                    if_status="in_progress") is False
    got = await store.get_response("resp_bg")
    assert got.status == "cancelled" and got.body["output"][0]["content"][0]["text"] == "hi"
    assert await store.put_response(response("resp_bg", status="cancelled", text="again"),
                                    if_status="cancelled") is True


async def test_response_chain(store: HistoryStore) -> None:
    assert await store.response_chain("resp_unknown") is None
    await store.put_response(response("r1"))
    await store.put_response(response("r2", prev="r1"))
    await store.put_response(response("r3", prev="r2"))
    await store.put_response(response("r4", prev="r3"))
    chain = await store.response_chain("r4")
    assert [r.id for r in chain] == ["r1", "r2", "r3", "r4"]
    assert chain[1] == await store.get_response("r2")
    assert [r.id for r in await store.response_chain("r4", limit=2)] == ["r3", "r4"]
    assert [r.id for r in await store.response_chain("r4", limit=1)] == ["r4"]
    assert [r.id for r in await store.response_chain("r1")] == ["r1"]
    # a deleted link ends the chain there, and deletes nothing else
    assert await store.delete_response("r2") is True
    assert [r.id for r in await store.response_chain("r4")] == ["r3", "r4"]
    assert [r.id for r in await store.response_chain("r1")] == ["r1"]
    # a previous id that was never stored
    await store.put_response(response("r9", prev="r_missing"))
    assert [r.id for r in await store.response_chain("r9")] == ["r9"]


async def test_chain_context(store: HistoryStore) -> None:
    assert await store.chain_context("resp_unknown") is None
    await store.put_response(response("x1"))
    await store.put_response(response("x2", prev="x1", text="two"))
    await store.put_response(response("x3", status="in_progress", prev="x2"))
    for rid, limit in (("x3", 1000), ("x3", 2), ("x2", 1000), ("x1", 1)):
        chain = await store.response_chain(rid, limit)
        want = [i for r in chain for i in r.input_items + r.body["output"]]
        assert await store.chain_context(rid, limit) == (chain[-1].status, want)
    assert (await store.chain_context("x3"))[0] == "in_progress"
    no_output = response("x4", prev="x3")
    del no_output.body["output"]
    await store.put_response(no_output)
    assert (await store.chain_context("x4"))[1][-1] == no_output.input_items[0]
    await store.delete_response("x2")
    assert await store.chain_context("x3") == ("in_progress", [*response("x3").input_items,
                                                                *response("x3").body["output"]])


async def test_response_chain_cycle_ends(store: HistoryStore) -> None:
    await store.put_response(response("ca", prev="cb"))
    await store.put_response(response("cb", prev="ca"))
    assert [r.id for r in await store.response_chain("ca")] == ["cb", "ca"]
    await store.put_response(response("self", prev="self"))
    assert [r.id for r in await store.response_chain("self")] == ["self"]


async def test_conversation_crud(store: HistoryStore) -> None:
    assert await store.get_conversation("conv_unknown") is None
    assert await store.update_conversation("conv_unknown", {"a": "b"}) is None
    assert await store.delete_conversation("conv_unknown") is False
    conv = Conversation("conv_1", 1700000001, {"topic": "démo"})
    await store.create_conversation(conv, [item("i1"), item("i2")])
    got = await store.get_conversation("conv_1")
    assert got == conv
    assert got.to_json() == {"id": "conv_1", "object": "conversation", "created_at": 1700000001,
                             "metadata": {"topic": "démo"}}

    updated = await store.update_conversation("conv_1", {"x": "1", "y": "2"})
    assert updated == Conversation("conv_1", 1700000001, {"x": "1", "y": "2"})
    assert await store.get_conversation("conv_1") == updated
    assert (await store.update_conversation("conv_1", {})).metadata == {}
    assert ids(await store.list_items("conv_1", order="asc")) == ["i1", "i2"]

    # deleting cascades to its items
    assert await store.delete_conversation("conv_1") is True
    assert await store.get_conversation("conv_1") is None
    assert await store.list_items("conv_1") is None
    assert await store.get_item("conv_1", "i1") is None
    assert await store.delete_item("conv_1", "i1") is False
    assert await store.append_items("conv_1", [item("i3")]) is False
    assert await store.delete_conversation("conv_1") is False
    # the id can be used again, from empty
    await store.create_conversation(Conversation("conv_1", 5, {}), [])
    assert ids(await store.list_items("conv_1")) == []


async def test_create_conversation_again_starts_it_over(store: HistoryStore) -> None:
    await store.create_conversation(Conversation("conv_x", 1, {"old": "1"}), [item("x1"), item("x2")])
    await store.create_conversation(Conversation("conv_x", 2, {"new": "2"}), [item("x3")])
    assert await store.get_conversation("conv_x") == Conversation("conv_x", 2, {"new": "2"})
    assert ids(await store.list_items("conv_x")) == ["x3"]
    assert await store.get_item("conv_x", "x1") is None


async def test_append_items(store: HistoryStore) -> None:
    assert await store.append_items("conv_unknown", [item("x")]) is False
    assert await store.get_conversation("conv_unknown") is None
    await store.create_conversation(Conversation("conv_a", 1, {}), [])
    assert await store.append_items("conv_a", []) is True
    assert await store.append_items("conv_a", [item("a1"), item("a2")]) is True
    assert await store.append_items("conv_a", [item("a3")]) is True
    page = await store.list_items("conv_a", order="asc")
    assert page.items == [item("a1"), item("a2"), item("a3")] and page.has_more is False
    # an id already there: its body is replaced, it keeps its place
    assert await store.append_items("conv_a", [item("a1", n=7), item("a4")]) is True
    page = await store.list_items("conv_a", order="asc")
    assert ids(page) == ["a1", "a2", "a3", "a4"] and page.items[0] == item("a1", n=7)


async def test_items_are_per_conversation(store: HistoryStore) -> None:
    await store.create_conversation(Conversation("conv_a", 1, {}), [item("same", 1)])
    await store.create_conversation(Conversation("conv_b", 2, {}), [item("same", 2), item("b2")])
    assert await store.get_item("conv_a", "same") == item("same", 1)
    assert await store.get_item("conv_b", "same") == item("same", 2)
    assert await store.get_item("conv_a", "b2") is None
    assert await store.delete_item("conv_a", "b2") is False
    assert await store.delete_conversation("conv_b") is True
    assert await store.get_item("conv_a", "same") == item("same", 1)
    assert ids(await store.list_items("conv_a")) == ["same"]


async def test_get_and_delete_item(store: HistoryStore) -> None:
    await store.create_conversation(Conversation("conv_g", 1, {}), [item("g1"), item("g2"), item("g3")])
    assert await store.get_item("conv_g", "g2") == item("g2")
    assert await store.get_item("conv_g", "nope") is None
    assert await store.get_item("conv_nope", "g2") is None
    assert await store.delete_item("conv_g", "g2") is True
    assert await store.delete_item("conv_g", "g2") is False
    assert await store.delete_item("conv_nope", "g1") is False
    assert await store.get_item("conv_g", "g2") is None
    assert ids(await store.list_items("conv_g", order="asc")) == ["g1", "g3"]
    # a deleted item is an unknown cursor: an empty page
    assert await store.list_items("conv_g", after="g2") == ItemPage([], False)
    assert await store.append_items("conv_g", [item("g4")]) is True
    assert ids(await store.list_items("conv_g")) == ["g4", "g3", "g1"]


async def test_list_items_paging(store: HistoryStore) -> None:
    assert await store.list_items("conv_unknown") is None
    names = [f"p{n}" for n in range(7)]
    await store.create_conversation(Conversation("conv_p", 1, {}), [item(names[0])])
    await store.append_items("conv_p", [item(n) for n in names[1:4]])
    await store.append_items("conv_p", [item(n) for n in names[4:]])

    page = await store.list_items("conv_p")  # defaults: desc, 20
    assert ids(page) == names[::-1] and page.has_more is False
    page = await store.list_items("conv_p", limit=3, order="asc")
    assert ids(page) == names[:3] and page.has_more is True
    page = await store.list_items("conv_p", limit=3, order="asc", after="p2")
    assert ids(page) == names[3:6] and page.has_more is True
    page = await store.list_items("conv_p", limit=3, order="asc", after="p5")
    assert ids(page) == ["p6"] and page.has_more is False
    assert await store.list_items("conv_p", limit=3, order="asc", after="p6") == ItemPage([], False)

    page = await store.list_items("conv_p", limit=3, order="desc")
    assert ids(page) == ["p6", "p5", "p4"] and page.has_more is True
    page = await store.list_items("conv_p", limit=3, order="desc", after="p4")
    assert ids(page) == ["p3", "p2", "p1"] and page.has_more is True
    page = await store.list_items("conv_p", limit=3, order="desc", after="p1")
    assert ids(page) == ["p0"] and page.has_more is False
    assert await store.list_items("conv_p", order="desc", after="p0") == ItemPage([], False)

    page = await store.list_items("conv_p", limit=7, order="asc")
    assert ids(page) == names and page.has_more is False
    page = await store.list_items("conv_p", limit=6, order="asc")
    assert len(page.items) == 6 and page.has_more is True
    page = await store.list_items("conv_p", limit=1, order="desc", after="p6")
    assert ids(page) == ["p5"] and page.has_more is True
    assert await store.list_items("conv_p", after="p_unknown") == ItemPage([], False)
    assert await store.list_items("conv_p", order="asc", after="p_unknown") == ItemPage([], False)


async def test_records_are_stored_whole(store: HistoryStore) -> None:
    deep = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f",
            "arguments": '{"q": "a\\"b", "n": [1, 2.5, null, true]}', "nested": {"a": [{"b": {"c": []}}]},
            "big": 2**53 + 1, "neg": -7, "float": 1e-9, "empty": "", "none": None, "text": "line\nbreak\ttab ✓"}
    await store.create_conversation(Conversation("conv_w", 1, {"k" * 64: "v" * 512}), [deep])
    assert await store.get_item("conv_w", "fc_1") == deep
    assert (await store.get_conversation("conv_w")).metadata == {"k" * 64: "v" * 512}
    rec = response("resp_w")
    rec.body["output"].append(deep)
    rec.input_items = [deep, item("x")]
    await store.put_response(rec)
    assert await store.get_response("resp_w") == rec
