"""Regenerate the gRPC stubs in ``smg/_proto`` from ``proto/*.proto``.

    python -m smg._proto.generate            # rewrite smg/_proto in place
    python -m smg._proto.generate --out DIR  # write elsewhere (the drift test does this)

Runs ``grpc_tools.protoc`` (package ``grpcio-tools``) with ``--python_out``,
``--pyi_out`` and ``--grpc_python_out``, then rewrites protoc's flat imports
(``import common_pb2``) into package imports (``from smg._proto import common_pb2``).
The generated files are committed and never edited by hand.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

PROTO_DIR = pathlib.Path(__file__).resolve().parents[2] / "proto"
PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
PROTOS = ("common.proto", "sglang_scheduler.proto", "vllm_engine.proto")
PACKAGE = "smg._proto"

_FLAT_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)
_FLAT_FROM = re.compile(r"^from (\w+_pb2) import (\w+)", re.MULTILINE)


def generated_names() -> list[str]:
    names = []
    for proto in PROTOS:
        stem = proto[: -len(".proto")]
        names += [f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"]
    return names


def generate(out_dir: pathlib.Path, proto_dir: pathlib.Path = PROTO_DIR) -> list[pathlib.Path]:
    """Write the stubs of every proto into ``out_dir``; returns the files written."""
    import grpc_tools
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{proto_dir}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        "--experimental_allow_proto3_optional",
        *(str(proto_dir / p) for p in PROTOS),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {proto_dir}")
    written = []
    for name in generated_names():
        path = out_dir / name
        text = path.read_text(encoding="utf-8")
        text = _FLAT_IMPORT.sub(rf"from {PACKAGE} import \1 as \2", text)
        text = _FLAT_FROM.sub(rf"from {PACKAGE}.\1 import \2", text)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=PACKAGE_DIR)
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
