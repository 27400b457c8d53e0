"""The --workers N change log (smg.http.worker_sync): order, own lines skipped, torn lines
waited for, bad lines skipped, the directory private and removed by its owner only."""

from __future__ import annotations

import os
import stat

import orjson

from smg.http import worker_sync
from smg.http.worker_sync import WorkerLog


async def _poll(log: WorkerLog) -> list[dict]:
    seen: list[dict] = []

    async def apply(change: dict) -> None:
        seen.append(change)

    await log.poll(apply)
    return seen


async def test_changes_from_other_processes_arrive_in_order(tmp_path):
    path = tmp_path / "workers.jsonl"
    path.touch()
    mine, other = WorkerLog(str(path)), WorkerLog(str(path))
    other.pid = mine.pid + 1  # as a sibling process would be
    other.publish("add", url="http://a:1", role="regular")
    mine.publish("add", url="http://mine:1", role="regular")
    other.publish("remove", url="http://a:1", role="regular")
    assert [(c["op"], c["url"]) for c in await _poll(mine)] == [("add", "http://a:1"), ("remove", "http://a:1")]
    assert await _poll(mine) == []  # read once
    assert [c["url"] for c in await _poll(other)] == ["http://mine:1"]


async def test_a_torn_line_waits_and_a_bad_line_is_skipped(tmp_path):
    path = tmp_path / "workers.jsonl"
    line = orjson.dumps({"pid": -1, "op": "add", "url": "http://b:1", "role": "regular"})
    path.write_bytes(b"not json\n" + line[:10])
    log = WorkerLog(str(path))
    assert await _poll(log) == []
    with path.open("ab") as f:
        f.write(line[10:] + b"\n")
    assert [c["url"] for c in await _poll(log)] == ["http://b:1"]


async def test_a_failing_change_does_not_stop_the_next(tmp_path):
    path = tmp_path / "workers.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"pid": -1, "op": op, "url": "u", "role": "r"}) + b"\n"
                              for op in ("boom", "add")))
    log, applied = WorkerLog(str(path)), []

    async def apply(change: dict) -> None:
        if change["op"] == "boom":
            raise RuntimeError("bad change")
        applied.append(change["op"])

    await log.poll(apply)
    assert applied == ["add"]


def test_share_makes_a_private_directory(monkeypatch):
    monkeypatch.setattr(worker_sync, "_PATH", None)
    path = worker_sync.share()
    try:
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        log = worker_sync.shared_log()
        assert log is not None and log.path == path
    finally:
        os.remove(path)
        os.rmdir(os.path.dirname(path))
