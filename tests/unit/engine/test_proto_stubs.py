"""The committed stubs in smg/_proto are what proto/*.proto generates, and the protos
keep the wire names the SGLang / vLLM servers use."""

from __future__ import annotations

import importlib
import pathlib
import re

import pytest

pytest.importorskip("grpc_tools")

from smg._proto import generate as gen  # noqa: E402

_VERSION_LINES = re.compile(
    r"# Protobuf Python Version: .*|_runtime_version\.ValidateProtobufRuntimeVersion\([^)]*\)"
    r"|GRPC_GENERATED_VERSION = '.*'"
)


def _generated_grpc_version() -> str:
    text = (gen.PACKAGE_DIR / "common_pb2_grpc.py").read_text()
    return re.search(r"GRPC_GENERATED_VERSION = '(.*)'", text).group(1)


def test_committed_stubs_match_a_fresh_generation(tmp_path: pathlib.Path) -> None:
    import grpc_tools

    written = gen.generate(tmp_path)
    assert sorted(p.name for p in written) == sorted(gen.generated_names())
    same_tools = getattr(grpc_tools, "__version__", None) in (None, _generated_grpc_version())
    drifted = []
    for path in written:
        committed = (gen.PACKAGE_DIR / path.name).read_text()
        fresh = path.read_text()
        if _VERSION_LINES.sub("", committed) != _VERSION_LINES.sub("", fresh):
            drifted.append(path.name)
    if drifted and not same_tools:
        pytest.skip(f"grpcio-tools differs from the one that generated the stubs: {drifted}")
    assert not drifted, f"stale stubs (run `python -m smg._proto.generate`): {drifted}"


@pytest.mark.parametrize("stem", ["common", "sglang_scheduler", "vllm_engine"])
def test_committed_descriptor_matches_the_proto_file(tmp_path: pathlib.Path, stem: str) -> None:
    """Version-independent check: the serialized descriptor equals protoc's."""
    import grpc_tools
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    out = tmp_path / "set.pb"
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    assert (
        protoc.main(
            [
                "protoc",
                f"-I{gen.PROTO_DIR}",
                f"-I{well_known}",
                f"--descriptor_set_out={out}",
                "--experimental_allow_proto3_optional",
                str(gen.PROTO_DIR / f"{stem}.proto"),
            ]
        )
        == 0
    )
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    _clear_json_names(fresh.message_type)  # protoc adds them; generated code omits them
    module = importlib.import_module(f"smg._proto.{stem}_pb2")
    committed = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
    assert committed == fresh


def _clear_json_names(messages) -> None:
    for m in messages:
        for f in m.field:
            f.ClearField("json_name")
        _clear_json_names(m.nested_type)


def test_services_and_wire_names() -> None:
    from smg._proto import common_pb2, sglang_scheduler_pb2, vllm_engine_pb2

    sg = sglang_scheduler_pb2.DESCRIPTOR.services_by_name["SglangScheduler"]
    assert sg.full_name == "sglang.grpc.scheduler.SglangScheduler"
    assert sg.methods_by_name["Generate"].server_streaming
    assert sg.methods_by_name["GetTokenizer"].output_type.full_name == (
        "smg.grpc.common.GetTokenizerChunk"
    )
    vl = vllm_engine_pb2.DESCRIPTOR.services_by_name["VllmEngine"]
    assert vl.full_name == "vllm.grpc.engine.VllmEngine"
    assert "FlushCache" not in vl.methods_by_name
    # a few field numbers the gateway depends on (see smg-anatomy.md section 6)
    resp = sglang_scheduler_pb2.GenerateResponse.DESCRIPTOR.fields_by_name
    assert (resp["request_id"].number, resp["chunk"].number, resp["complete"].number) == (1, 2, 3)
    vresp = vllm_engine_pb2.GenerateResponse.DESCRIPTOR.fields_by_name
    assert (vresp["chunk"].number, vresp["complete"].number) == (1, 2)
    load = sglang_scheduler_pb2.SchedulerLoad.DESCRIPTOR.fields_by_name
    assert load["num_waiting_uncached_tokens"].number == 17
    assert common_pb2.GetTokenizerChunk.DESCRIPTOR.fields_by_name["sha256"].number == 2
