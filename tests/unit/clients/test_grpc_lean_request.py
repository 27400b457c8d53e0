"""``build_request`` (shared by the lean and grpc.aio clients) fills the prompt in place;
the bytes must be those of the plain construction, for both protos."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from smg._proto import sglang_scheduler_pb2 as sg, vllm_engine_pb2 as vl
from smg.clients.grpc_lean import LeanGrpcWorkerClient
from smg.clients.grpc_types import GenParams

params = st.builds(
    GenParams,
    request_id=st.text(max_size=20),
    input_ids=st.lists(st.integers(0, 2**31 - 1), max_size=50),
    original_text=st.text(max_size=20),
    stream=st.booleans(),
    max_new_tokens=st.none() | st.integers(0, 10**6),
    stop_token_ids=st.lists(st.integers(0, 200_000), max_size=3),
    n=st.integers(1, 4),
    return_logprob=st.booleans(),
    top_logprobs=st.integers(0, 5),
    seed=st.none() | st.integers(0, 2**31 - 1),
)


def plain(proto: str, p: GenParams):
    """The straightforward construction: nested messages passed as fields."""
    client = LeanGrpcWorkerClient("grpc://127.0.0.1:1", proto)
    req = client.build_request(p)
    mod = sg if proto == "sglang" else vl
    fields = {f.name: getattr(req, f.name) for f, _ in req.ListFields() if f.name != "tokenized"}
    return mod.GenerateRequest(
        tokenized=mod.TokenizedInput(original_text=p.original_text, input_ids=p.input_ids), **fields)


@given(params)
@settings(max_examples=60, deadline=None)
def test_in_place_prompt_serializes_like_the_plain_construction(p) -> None:
    for proto in ("sglang", "vllm"):
        built = LeanGrpcWorkerClient("grpc://127.0.0.1:1", proto).build_request(p)
        assert built.HasField("tokenized")
        assert built.SerializeToString(deterministic=True) == plain(proto, p).SerializeToString(
            deterministic=True)


@given(params)
@settings(max_examples=60, deadline=None)
def test_lean_request_bytes_parse_to_the_built_request(p) -> None:
    for proto, mod in (("sglang", sg), ("vllm", vl)):
        client = LeanGrpcWorkerClient("grpc://127.0.0.1:1", proto)
        assert mod.GenerateRequest.FromString(client._generate_request(p)) == client.build_request(p)
