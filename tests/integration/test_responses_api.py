"""The Responses and Conversations APIs end to end: the openai client against a real
gateway and a reference worker in script mode, in proxy mode (HTTP worker, the request
converted to a chat completion) and gRPC mode (the gateway's own chat pipeline), on each
history backend of ``_responses_lib.BACKENDS``."""

from __future__ import annotations

import json
import time

import openai
import pytest

from _responses_lib import (
    ARGS, BACKENDS, LONG_TOKENS, MODEL, REASONING, SCRIPT, TOOLS, backend_settings, gateway, start_worker,
)

try:  # the private PostgreSQL and Redis servers of the storage tests
    from tests.storage_servers import postgres_server, redis_server  # noqa: F401
except ImportError:
    pass

MODES = ["proxy", "grpc"]


@pytest.fixture(scope="module")
def script_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("responses") / "script.json"
    path.write_text(json.dumps(SCRIPT), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module", params=MODES)
def worker(request, script_path):
    w, url = start_worker(request.param, script_path)
    yield request.param, w, url
    w.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def gw(request, worker, tmp_path_factory):
    mode, w, url = worker
    settings, cleanup = backend_settings(request.param, request, tmp_path_factory.mktemp("history"))
    server, client = gateway(url, settings)
    client.mode, client.worker = mode, w
    yield client
    server.stop()
    cleanup()


def _text(resp) -> str:
    return "".join(c.text for item in resp.output if item.type == "message" for c in item.content)


def _not_found(call):
    with pytest.raises(openai.NotFoundError) as info:
        call()
    return info.value


def test_one_turn(gw) -> None:
    resp = gw.responses.create(model="qwen3-ref", input="hello", metadata={"k": "v"}, user="u1")
    assert resp.id.startswith("resp_") and resp.object == "response" and resp.status == "completed"
    (msg,) = resp.output
    assert msg.type == "message" and msg.id.startswith("msg_") and msg.status == "completed"
    assert resp.output_text == "Plain answer."
    assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    assert resp.metadata == {"k": "v"} and resp.user == "u1" and resp.store is True
    again = gw.responses.retrieve(resp.id)
    assert again.model_dump() == resp.model_dump()


def test_previous_response_chain(gw) -> None:
    first = gw.responses.create(input="My name is Ada.", instructions="Speak like a pirate.")
    second = gw.responses.create(input="What is my name?", previous_response_id=first.id)
    assert second.output_text == "Your name is Ada."  # the chain is the context, not its instructions
    assert second.previous_response_id == first.id and second.instructions is None
    third = gw.responses.create(input="What is my name?", previous_response_id=second.id, instructions="Be brief.")
    assert third.output_text == "Your name is Ada." and third.instructions == "Be brief."
    assert gw.responses.create(input="What is my name?").output_text == "I do not know your name."
    items = gw.responses.input_items.list(second.id)
    assert [(i.type, i.role, i.content[0].text) for i in items.data] == [("message", "user", "What is my name?")]
    assert items.data[0].id.startswith("msg_")


def test_conversation(gw) -> None:
    conv = gw.conversations.create(metadata={"topic": "names"},
                                   items=[{"type": "message", "role": "user", "content": "My name is Ada."}])
    assert conv.id.startswith("conv_") and conv.object == "conversation" and conv.metadata == {"topic": "names"}
    resp = gw.responses.create(input="What is my name?", conversation=conv.id)
    assert resp.output_text == "Your name is Ada." and resp.conversation.id == conv.id
    items = gw.conversations.items.list(conv.id, order="asc")
    assert [(i.type, i.role) for i in items.data] == [("message", "user"), ("message", "user"), ("message", "assistant")]
    assert items.data[-1].id == resp.output[0].id and items.data[-1].content[0].text == "Your name is Ada."
    newest = gw.conversations.items.list(conv.id, limit=1)  # desc by default
    assert [i.id for i in newest.data] == [resp.output[0].id] and newest.has_more
    page2 = gw.conversations.items.list(conv.id, limit=5, after=newest.data[0].id)
    assert [i.id for i in page2.data] == [i.id for i in reversed(items.data[:-1])] and not page2.has_more
    # a second turn in the same conversation sees the whole of it
    assert gw.responses.create(input="What is my name?", conversation=conv.id).output_text == "Your name is Ada."
    added = gw.conversations.items.create(conv.id, items=[{"type": "message", "role": "user", "content": "x"}])
    assert len(added.data) == 1 and added.data[0].id.startswith("msg_")
    assert gw.conversations.items.retrieve(added.data[0].id, conversation_id=conv.id).id == added.data[0].id
    assert gw.conversations.items.delete(added.data[0].id, conversation_id=conv.id).id == conv.id
    _not_found(lambda: gw.conversations.items.retrieve(added.data[0].id, conversation_id=conv.id))
    assert gw.conversations.update(conv.id, metadata={"topic": "other"}).metadata == {"topic": "other"}
    assert gw.conversations.retrieve(conv.id).metadata == {"topic": "other"}
    deleted = gw.conversations.delete(conv.id)
    assert deleted.deleted and deleted.id == conv.id and deleted.object == "conversation.deleted"
    _not_found(lambda: gw.conversations.retrieve(conv.id))
    _not_found(lambda: gw.responses.create(input="hi", conversation=conv.id))


def test_function_tool_round_trip(gw) -> None:
    first = gw.responses.create(input="What's the weather in Paris?", tools=TOOLS)
    assert [i.type for i in first.output] == ["reasoning", "message", "function_call"]
    reasoning, msg, call = first.output
    assert reasoning.id.startswith("rs_") and reasoning.content[0].text == REASONING
    assert msg.content[0].text.strip() == "Let me check."
    assert call.id.startswith("fc_") and call.name == "get_weather" and json.loads(call.arguments) == ARGS
    assert call.call_id and call.status == "completed"
    out = {"type": "function_call_output", "call_id": call.call_id, "output": "18 degrees, sunny"}
    second = gw.responses.create(previous_response_id=first.id, input=[out], tools=TOOLS)
    assert second.output_text == "It is 18 degrees in Paris."
    # the same without stored state: the client sends the items back itself
    history = [{"role": "user", "content": "What's the weather in Paris?"},
               *[i.model_dump(exclude_none=True) for i in first.output], out]
    third = gw.responses.create(input=history, tools=TOOLS, store=False)
    assert third.output_text == "It is 18 degrees in Paris."
    _not_found(lambda: gw.responses.retrieve(third.id))


def test_tool_choice_none_keeps_the_markup_as_text(gw) -> None:
    resp = gw.responses.create(input="What's the weather in Paris?", tools=TOOLS, tool_choice="none")
    assert [i.type for i in resp.output] == ["reasoning", "message"]
    assert "<tool_call>" in resp.output_text


def test_reasoning_output(gw) -> None:
    resp = gw.responses.create(input="think about it", reasoning={"effort": "low"})
    assert [i.type for i in resp.output] == ["reasoning", "message"]
    assert resp.output[0].content[0].text == "two and two" and resp.output_text == "The answer is 4."
    assert resp.reasoning.effort == "low"
    if gw.mode == "grpc":  # the gateway tokenizes; a proxied worker reports its own count
        assert 0 < resp.usage.output_tokens_details.reasoning_tokens < resp.usage.output_tokens


def test_reasoning_effort_none_turns_thinking_off(gw) -> None:
    resp = gw.responses.create(input="think about it", reasoning={"effort": "none"})
    assert [i.type for i in resp.output] == ["message"] and resp.output_text == "I answer at once."


def test_json_schema_output(gw) -> None:
    fmt = {"type": "json_schema", "name": "answer", "strict": True,
           "schema": {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}}
    resp = gw.responses.create(input="json please", text={"format": fmt})
    assert json.loads(resp.output_text) == {"answer": 42}
    assert resp.text.format.type == "json_schema" and resp.text.format.name == "answer"


def test_max_output_tokens_is_incomplete(gw) -> None:
    resp = gw.responses.create(input="count slowly", max_output_tokens=3)
    assert resp.status == "incomplete" and resp.incomplete_details.reason == "max_output_tokens"
    assert resp.usage.output_tokens == 3 and resp.output[0].status == "incomplete"
    events = list(gw.responses.create(input="count slowly", max_output_tokens=3, stream=True))
    assert events[-1].type == "response.incomplete" and events[-1].response.status == "incomplete"


def _shape(resp) -> dict:
    data = resp.model_dump(exclude_none=True)
    for key in ("id", "created_at", "completed_at"):
        data.pop(key, None)
    for item in data["output"]:
        item.pop("id", None)
        item.pop("call_id", None)
        for part in item.get("content") or []:
            part.pop("parsed", None)
    data.pop("output_parsed", None)
    return data


@pytest.mark.parametrize("prompt", ["hello", "What's the weather in Paris?", "think about it"])
def test_stream_assembles_the_whole_response(gw, prompt) -> None:
    whole = gw.responses.create(model=MODEL, input=prompt, tools=TOOLS)
    with gw.responses.stream(model=MODEL, input=prompt, tools=TOOLS) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert _shape(final) == _shape(whole)
    assert final.id == events[0].response.id and gw.responses.retrieve(final.id).output_text == whole.output_text
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert kinds.count("response.output_item.added") == kinds.count("response.output_item.done") == len(whole.output)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == whole.output_text
    if whole.output[0].type == "reasoning":
        thought = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
        assert thought == whole.output[0].content[0].text
    calls = [i for i in whole.output if i.type == "function_call"]
    if calls:
        args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
        assert json.loads(args) == ARGS
        (done,) = [e for e in events if e.type == "response.function_call_arguments.done"]
        assert done.name == "get_weather" and json.loads(done.arguments) == ARGS


def test_background_and_cancel(gw) -> None:
    quick = gw.responses.create(input="hello", background=True)
    assert quick.status in ("queued", "in_progress") and quick.background
    deadline = time.monotonic() + 30
    while gw.responses.retrieve(quick.id).status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.02)  # polling for a state, as a client does; nothing asserts on time
    done = gw.responses.retrieve(quick.id)
    assert done.status == "completed" and done.output_text == "Plain answer."

    assert gw.worker.wait_for(lambda engine: not _running(engine), timeout=30)  # nothing left over
    generated = _generated(gw.worker.engine)
    slow = gw.responses.create(input="long story", background=True)  # seconds of tokens
    assert gw.worker.wait_for(_running), "the background run did not reach the worker"
    assert gw.responses.retrieve(slow.id).status == "in_progress"
    with pytest.raises(openai.BadRequestError):  # no chain from an answer not there yet
        gw.responses.create(input="and then?", previous_response_id=slow.id)
    cancelled = gw.responses.cancel(slow.id)
    assert cancelled.status == "cancelled" and cancelled.id == slow.id
    assert gw.responses.retrieve(slow.id).status == "cancelled"
    assert gw.responses.cancel(slow.id).status == "cancelled"  # again: as it is
    assert gw.worker.wait_for(lambda engine: not _running(engine), timeout=30)
    assert _generated(gw.worker.engine) - generated < LONG_TOKENS, "the worker's request was not stopped"
    assert gw.responses.retrieve(slow.id).status == "cancelled"


def _generated(engine) -> int:
    """Tokens the worker generated so far (a stopped run of the long reply makes fewer
    than LONG_TOKENS)."""
    return engine._generated_tokens


def _running(engine) -> bool:
    return engine.loads()["num_total_reqs"] > 0


def test_store_false_and_delete(gw) -> None:
    unstored = gw.responses.create(input="hello", store=False)
    assert unstored.store is False
    _not_found(lambda: gw.responses.retrieve(unstored.id))
    _not_found(lambda: gw.responses.create(input="hi", previous_response_id=unstored.id))
    resp = gw.responses.create(input="hello")
    gw.responses.delete(resp.id)
    _not_found(lambda: gw.responses.retrieve(resp.id))
    _not_found(lambda: gw.responses.delete(resp.id))
    _not_found(lambda: gw.responses.input_items.list(resp.id))


def test_truncation(gw) -> None:
    filler = "filler " * 2500  # two of these are over the worker's 4096-token context
    first = gw.responses.create(input=filler)
    with pytest.raises(openai.BadRequestError) as info:
        gw.responses.create(input=filler + "What now?", previous_response_id=first.id)
    assert "context" in str(info.value)
    resp = gw.responses.create(input=filler + "What now?", previous_response_id=first.id, truncation="auto")
    assert resp.status == "completed" and resp.truncation == "auto"


def test_client_leaving_a_stream_aborts_the_worker(gw) -> None:
    assert gw.worker.wait_for(lambda engine: not _running(engine), timeout=30)  # nothing left over
    generated = _generated(gw.worker.engine)
    stream = gw.responses.create(input="long story", stream=True)
    for event in stream:
        if event.type == "response.output_text.delta":
            break
    stream.close()
    assert gw.worker.wait_for(lambda engine: not _running(engine), timeout=30)
    assert _generated(gw.worker.engine) - generated < LONG_TOKENS, "the worker's request was not stopped"


def test_images(gw) -> None:
    image = {"role": "user", "content": [{"type": "input_text", "text": "hello"},
                                         {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]}
    if gw.mode == "proxy":  # passed on to the worker as an image_url part
        assert gw.responses.create(input=[image]).output_text == "Plain answer."
    else:
        with pytest.raises(openai.BadRequestError) as info:
            gw.responses.create(input=[image])
        assert "gRPC mode" in str(info.value) and info.value.body["param"] == "input"


def test_background_stream_resumes_and_outlives_its_client(gw) -> None:
    with gw.responses.stream(model=MODEL, input="hello", background=True) as stream:
        final = stream.get_final_response()
    assert final.status == "completed" and final.background and final.output_text == "Plain answer."
    assert gw.responses.retrieve(final.id).output_text == "Plain answer."

    first = gw.responses.create(input="count slowly", background=True, stream=True)
    seen = []
    for event in first:
        seen.append(event)
        if event.type == "response.output_text.delta":
            break
    first.close()  # the client leaves; the run goes on
    rest = list(gw.responses.retrieve(seen[0].response.id, stream=True, starting_after=seen[-1].sequence_number))
    events = seen + rest
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == events[-1].response.output_text == gw.responses.retrieve(seen[0].response.id).output_text
    again = list(gw.responses.retrieve(seen[0].response.id, stream=True))  # from the start, after the end
    assert [e.sequence_number for e in again] == list(range(len(events)))


def test_cancelling_a_background_stream_ends_it(gw) -> None:
    stream = gw.responses.create(input="long story", background=True, stream=True)
    events = iter(stream)
    created = next(events)
    assert gw.worker.wait_for(_running)
    assert gw.responses.cancel(created.response.id).status == "cancelled"
    rest = list(events)
    assert rest[-1].type == "error" and rest[-1].code == "cancelled"
    with pytest.raises(openai.BadRequestError):  # not streaming here: a stored response only
        list(gw.responses.retrieve(gw.responses.create(input="hello").id, stream=True))


def test_output_text_logprobs(gw) -> None:
    resp = gw.responses.create(input="hello", include=["message.output_text.logprobs"], top_logprobs=2)
    part = resp.output[0].content[0]
    assert part.text == "Plain answer." and "".join(lp.token for lp in part.logprobs).startswith(part.text)
    assert all(len(lp.top_logprobs) == 2 and lp.logprob <= 0 for lp in part.logprobs)
    assert resp.top_logprobs == 2
    events = list(gw.responses.create(input="hello", include=["message.output_text.logprobs"], stream=True))
    deltas = [lp.token for e in events if e.type == "response.output_text.delta" for lp in e.logprobs]
    assert "".join(deltas).startswith("Plain answer.")  # (a worker may add its end token's)
    assert not gw.responses.create(input="hello").output[0].content[0].logprobs  # only when asked for


def test_a_worker_failing_mid_stream_ends_it_failed(gw) -> None:
    if gw.mode != "proxy":
        pytest.skip("faults are injected per request through an HTTP header (proxy mode)")
    events = list(gw.responses.create(input="count slowly", stream=True,
                                      extra_headers={"x-smg-fault": "error_mid_stream:3"}))
    assert events[-1].type == "response.failed" and events[-1].response.error.message
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert gw.responses.retrieve(events[-1].response.id).status == "failed"  # stored as it ended
