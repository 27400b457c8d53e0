"""StreamRun pushed: after its first bytes, each worker read is stepped inside the read
(the source's listener) and written by a synchronous writer, the driving task woken only
for the end, errors and back-pressure. Whatever writes the client refuses, the bytes it
gets (written, then what the task sends) are those of the task-driven run; a step that
fails ends the request with an error event and never reaches the connection."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st
from test_stream import TEXT, FakeSource, _complete, _drive, _events, _group, _messages, _runtime, _summary
from test_stream import _run as _make_run
from test_stream import table, tok  # noqa: F401 - fixtures

from smg.pipeline.stream import StreamRun


class PushSource(FakeSource):
    """FakeSource with the lean client's ``listen``."""

    listener = None

    def listen(self, listener) -> None:
        self.listener = listener


async def _run(runtime, reads, **body):
    run, source, completions = await _make_run(runtime, reads, **body)
    push = PushSource(source.reads, source.error)
    run.attempt.source = push
    run.wait = push.wait
    return run, push


async def _drive_push(run: StreamRun, source: PushSource, refusals: list[bool]) -> tuple[list, int]:
    """As the HTTP side drives it: the first step by the task, then pushed; every read
    the connection delivers while the task waits goes to the listener; ``refusals``
    says which writes the client transport refuses (over its high-water mark)."""
    refuse = iter(refusals)
    sent: list[bytes] = []
    pushed = 0

    def write(body: bytes) -> bool:
        nonlocal pushed
        if next(refuse, False):
            return False
        sent.append(body)
        pushed += 1
        return True

    try:
        sent.append(run.step())
        if not run.finished:
            assert run.push(write)
            while True:
                while source.listener is not None and source.listener():
                    pass  # a read taken inside the connection's read
                sent.append(run.step())  # the task woke: the end, an error or back-pressure
                if run.finished:
                    break
    finally:
        await run.close()
    assert source.listener is None  # close took the listener off
    return _events(b"".join(sent)), pushed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(0, 200), max_size=12), sizes=st.lists(st.integers(1, 4), max_size=12),
       refusals=st.lists(st.booleans(), max_size=20), stop=st.sampled_from([None, ["狐狸"]]),
       usage=st.booleans())
async def test_pushed_gives_what_the_task_driven_run_gives(tok, table, cuts, sizes, refusals, stop, usage) -> None:
    ids = tok.encode(TEXT, False)
    msgs = _messages(ids, cuts)
    body = {"stop": stop, "stream_options": {"include_usage": usage}, "rid": "same-id"}
    reads = _group(msgs, sizes) + [[_complete(0, ids)]]
    plain, _ = await _run(_runtime(tok, table), reads, **body)
    pushed, source = await _run(_runtime(tok, table), reads, **body)
    expected = await _drive(plain)
    got, _ = await _drive_push(pushed, source, refusals)
    for event in got + expected:
        if isinstance(event, dict):
            event.pop("created", None)
    assert got == expected
    assert _summary(got)["done"]
    if stop is not None:
        assert source.aborted  # a local stop on the pushed path still aborts on the worker


async def test_reads_go_out_from_the_listener(tok, table) -> None:
    ids = tok.encode(TEXT, False)
    reads = [[m] for m in _group(_messages(ids, list(range(1, len(ids)))), [1] * len(ids))]
    reads = [r[0] for r in reads] + [[_complete(0, ids)]]
    run, source = await _run(_runtime(tok, table), reads)
    events, pushed = await _drive_push(run, source, [])
    assert pushed >= len(ids) - 2  # all but the first read and the end
    assert _summary(events)[0]["content"] == TEXT


async def test_a_step_that_fails_inside_the_read_ends_the_request_with_an_error_event(tok, table) -> None:
    ids = tok.encode(TEXT, False)
    reads = _group(_messages(ids, list(range(1, len(ids)))), [1] * len(ids)) + [[_complete(0, ids)]]
    run, source = await _run(_runtime(tok, table), reads)
    steps = 0
    real = run._run  # each read here is one run of one choice

    def failing(*args):
        nonlocal steps
        steps += 1
        if steps == 3:
            raise RuntimeError("a bug")
        real(*args)

    run._run = failing
    run.step()
    assert run.push(lambda body: True)
    assert source.listener() is True  # the second read went out
    assert source.listener() is False  # the third failed: the task is woken, nothing raised
    assert run.finished and not run.ok and not run.failed  # a bug here, not the worker's failure
    events = _events(run.step())
    assert events[-1] == "[DONE]" and events[-2]["error"]["type"] == "internal_error"
    await run.close()
    assert source.aborted and source.listener is None


async def test_a_source_without_listen_is_not_pushed(tok, table) -> None:
    run, source, _ = await _make_run(_runtime(tok, table), [[_complete(0, [1])]])
    assert not run.push(lambda body: True)
    await _drive(run)
