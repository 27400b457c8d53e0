"""The Responses API over prefill/decode disaggregation (gRPC mode, SGLang and vLLM
styles): a Responses turn is a chat completion run by the PD pipeline, a stored chain
goes on across turns, and streaming works."""

from __future__ import annotations

import pytest
from _pd_gateway import pd_gateway
from _pd_lib import PDWorker


@pytest.fixture(scope="module", params=["sglang", "vllm"])
def gw(request):
    proto = request.param
    kw = dict(transport="grpc", grpc_proto=proto, pd_style=proto)
    workers = [PDWorker(role="prefill", **kw), PDWorker(role="decode", **kw)]
    for w in workers:
        w.start()
    gateway = pd_gateway([(workers[0].url, workers[0].bootstrap_port)], [workers[1].url])
    gateway.prefill, gateway.decode = workers
    yield gateway
    gateway.server.stop()
    for w in workers:
        w.stop()


def test_a_chain_over_a_pd_pair(gw) -> None:
    first = gw.client.responses.create(model="smg-reference", input="pd one", max_output_tokens=5)
    assert first.status == "incomplete" and first.usage.output_tokens == 5 and first.output_text
    n_prefill, n_decode = len(gw.prefill.inputs), len(gw.decode.inputs)
    second = gw.client.responses.create(model="smg-reference", input="pd two", previous_response_id=first.id,
                                        max_output_tokens=5)
    assert second.output_text and len(gw.prefill.inputs) == n_prefill + 1 and len(gw.decode.inputs) == n_decode + 1
    assert second.usage.input_tokens > first.usage.input_tokens  # the chain is in the prompt
    events = list(gw.client.responses.create(model="smg-reference", input="pd three", stream=True,
                                             previous_response_id=second.id, max_output_tokens=5))
    assert events[-1].type == "response.incomplete"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == events[-1].response.output_text
