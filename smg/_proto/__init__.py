"""Generated gRPC stubs for ``proto/*.proto`` (regenerate: ``python -m smg._proto.generate``).

Never edited by hand; ``tests/unit/engine/test_proto_stubs.py`` fails when they drift
from the ``.proto`` files.
"""
