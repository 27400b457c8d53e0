"""Embed smg.router in your own asyncio HTTP server.

A small aiohttp front server picks a backend per request with ``smg.router``, proxies the
body, retries retryable failures on another worker with backoff, and reports outcomes so
load counts, circuit breakers and the cache-aware trees stay current. A health checker
probes ``GET /health`` on every backend.

Run it as is: it starts three toy backends on loopback, routes some chat requests through
the front server and prints which backend served what (``--policy`` picks the policy).
Point ``WORKER_URLS`` at real OpenAI-compatible servers to use it for real. It needs
aiohttp (``pip install aiohttp``; smg itself does not depend on it).
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter

import aiohttp
from aiohttp import web

from smg.router import (
    HealthChecker,
    HealthConfig,
    PolicyConfig,
    RequestInfo,
    Router,
    Worker,
    WorkerRegistry,
    create_policy,
    is_retryable,
)


def routing_info(body: dict, headers) -> RequestInfo:
    """What the policy sees: all message texts joined (multi-turn affinity), model, user.

    ``user`` (OpenAI's end-user id) is what consistent_hash and cache_aware stick to.
    """
    messages = body.get("messages") or []
    text = " ".join(m["content"] for m in messages if isinstance(m.get("content"), str))
    return RequestInfo(
        text=text or body.get("prompt"),
        model=body.get("model"),
        user=body.get("user"),
        headers={k.lower(): v for k, v in headers.items()},
    )


class Gateway:
    def __init__(self, router: Router, session: aiohttp.ClientSession) -> None:
        self.router = router
        self.session = session

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        info = routing_info(body, request.headers)
        tried: set[str] = set()
        retry = self.router.retry
        for attempt in range(retry.attempts):
            worker = self.router.select(info, exclude=tried)
            if worker is None:
                return web.json_response({"error": {"message": "no healthy worker", "type": "service_unavailable"}},
                                         status=503)
            tried.add(worker.id)
            worker.begin()
            success: bool | None = False
            try:
                async with self.session.post(worker.url + "/v1/chat/completions", json=body) as upstream:
                    payload = await upstream.read()
                    status = upstream.status
                success = True if status < 400 else (False if is_retryable(status) else None)
            except aiohttp.ClientError:
                status, payload = 502, b'{"error": {"message": "worker unreachable", "type": "bad_gateway"}}'
            finally:
                worker.end(success)
                self.router.on_complete(worker, info, success is not False)
            if success is not False or attempt + 1 == retry.attempts:
                return web.Response(body=payload, status=status, content_type="application/json")
            await asyncio.sleep(retry.delay(attempt))
        raise AssertionError("unreachable")


def toy_backend(name: str) -> web.Application:
    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"object": "chat.completion", "served_by": name,
                                  "choices": [{"message": {"role": "assistant", "content": f"hi from {name}"}}],
                                  "model": body.get("model")})

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    return app


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def amain(policy: str, requests: int, backends: int = 3) -> Counter:
    runners = []
    urls = []
    for i in range(backends):
        runner, url = await start(toy_backend(f"backend-{i}"))
        runners.append(runner)
        urls.append(url)
    registry = WorkerRegistry([Worker(u) for u in urls])
    router = Router(registry, create_policy(policy, PolicyConfig(seed=0)))
    async with aiohttp.ClientSession() as session:

        async def probe(worker: Worker) -> bool:
            async with session.get(worker.url + "/health") as r:
                return r.status == 200

        health = HealthChecker(registry, probe, HealthConfig(interval_secs=5.0))
        await health.check_once()
        health.start()
        front = web.Application()
        front.router.add_post("/v1/chat/completions", Gateway(router, session).chat)
        front_runner, front_url = await start(front)
        served: Counter = Counter()
        try:
            for i in range(requests):
                conversation = i % 6  # six users, each asking follow-ups
                messages = [{"role": "system", "content": f"You help user {conversation} with their project."},
                            {"role": "user", "content": f"Question {i // 4} from user {conversation}"}]
                body = {"model": "toy", "messages": messages, "user": f"user-{conversation}"}
                async with session.post(front_url + "/v1/chat/completions", json=body) as r:
                    served[((await r.json())["served_by"], body["user"])] += 1
        finally:
            await health.stop()
            await front_runner.cleanup()
            for runner in runners:
                await runner.cleanup()
    return served


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", default="round_robin")
    parser.add_argument("--requests", type=int, default=24)
    args = parser.parse_args(argv)
    served = asyncio.run(amain(args.policy, args.requests))
    for backend in sorted({b for b, _ in served}):
        users = sorted(u for b, u in served if b == backend)
        total = sum(n for (b, _), n in served.items() if b == backend)
        print(f"{backend}: {total} requests (users: {', '.join(users)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
