"""Shared by the security tests: keys, and an HTTP helper returning (status, JSON or text, headers)."""

from __future__ import annotations

import subprocess

import aiohttp
import orjson

CHAT = {"model": "stub-model", "messages": [{"role": "user", "content": "hello"}]}
ADMIN_KEY = "admin-secret-0123456789"
USER_KEY = "reader-secret-0123456789"
DATA_KEY = "data-secret-0123456789"
CONTROL_KEYS = [f"ops:Ops Team:admin:{ADMIN_KEY}", f"ro:Read Only:user:{USER_KEY}"]



async def call(method: str, url: str, payload: dict | None = None, *, key: str | None = None,
               headers: dict | None = None, **kw):
    data = None if payload is None else orjson.dumps(payload)
    headers = dict(headers or {})
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with aiohttp.ClientSession() as s, s.request(method, url, data=data, headers=headers,
                                                        allow_redirects=False, **kw) as r:
        raw = await r.read()
        try:
            return r.status, orjson.loads(raw), r.headers
        except orjson.JSONDecodeError:
            return r.status, raw.decode(errors="replace"), r.headers


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then wait; a process that does not stop is killed and the test fails."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
