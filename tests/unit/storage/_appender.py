"""A separate OS process appending to one conversation, for the cross-process tests:

    python tests/unit/storage/_appender.py KIND TARGET CONVERSATION TAG APPENDS PER_APPEND

opens the store (open_store, as a gateway process does), prints ``ready``, waits for a
line on stdin (so that all processes append at once), prints ``appending``, then runs APPENDS appends of
PER_APPEND items each, all concurrently (asyncio.gather), and prints ``done``.
"""

from __future__ import annotations

import asyncio
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3]))

from smg.config.history import HistorySettings  # noqa: E402
from smg.storage import open_store  # noqa: E402


def items_of(tag: str, k: int, per_append: int) -> list[dict]:
    return [{"type": "message", "id": f"{tag}_{k}_{j}", "role": "user", "append": f"{tag}_{k}", "j": j,
             "content": [{"type": "input_text", "text": f"{tag} {k} {j}"}]} for j in range(per_append)]


async def main(kind: str, target: str, conversation: str, tag: str, appends: int, per_append: int) -> None:
    store = open_store(HistorySettings(
        history_backend=kind, data_dir=target, postgres_db_url=target if kind == "postgres" else None,
        redis_url=target if kind == "redis" else None, postgres_pool_max=4, redis_pool_max=4,
    ))
    await store.start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    print("appending", flush=True)
    results = await asyncio.gather(*(store.append_items(conversation, items_of(tag, k, per_append))
                                     for k in range(appends)))
    await store.close()
    assert all(results), results
    print("done", flush=True)


if __name__ == "__main__":
    kind, target, conversation, tag, appends, per_append = sys.argv[1:7]
    asyncio.run(main(kind, target, conversation, tag, int(appends), int(per_append)))
