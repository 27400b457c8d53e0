"""gRPC mode never tells a client where its workers are: a worker that went away gives
the client an error (streamed or not) without the worker's URL, host or port."""

from __future__ import annotations

import json

import pytest

from _grpc_worker_lib import WorkerProcess
from tests.integration.test_grpc_faults import _gateway, _post


@pytest.mark.parametrize("stream", [False, True])
def test_a_gone_worker_is_not_named_to_the_client(stream):
    worker = WorkerProcess()
    try:
        port = worker.wait_ready()
        with _gateway([f"grpc://127.0.0.1:{port}"], disable_retries=True, health_check_interval_secs=3600) as gw:
            assert _post(gw, {"prompt": "hi", "max_tokens": 2})[0] == 200
            worker.stop()
            status, body = _post(gw, {"prompt": "hi", "max_tokens": 2, "stream": stream})
    finally:
        worker.stop()
    text = body.decode()
    assert str(port) not in text and "127.0.0.1" not in text and "grpc://" not in text, text
    if status == 200:  # a stream already started ends with an error event
        assert stream and '"error"' in text and text.rstrip().endswith("data: [DONE]")
    else:  # nothing sent yet: an error answer
        assert status >= 500 and json.loads(text)["error"]["message"]
