"""Request ids made up for gRPC mode: the format, no repeats, and none shared with a fork."""

from __future__ import annotations

import os
import re

from smg.pipeline.prepare import new_request_id


def test_format_and_uniqueness() -> None:
    ids = [new_request_id("chat") for _ in range(2000)]
    assert all(re.fullmatch(r"chatcmpl-[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert re.fullmatch(r"cmpl-[0-9a-f]{32}", new_request_id("text"))


def test_a_forked_child_draws_other_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        try:
            os.write(write, " ".join(new_request_id("chat") for _ in range(4)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        child = set(f.read().split())
    os.waitpid(pid, 0)
    parent = {new_request_id("chat") for _ in range(4)}
    assert len(child) == 4 and not child & parent
