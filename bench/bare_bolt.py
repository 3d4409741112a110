"""The baselines of bench/ack.py: Bolt behind the same aiohttp adapter, a listener that acks.

Same signature verification, same local authorisation and ``process_before_response``
as ``glider-relay web``; no parsing, no logging per request. Bare, the listener only
acks; given a Redis URL, it first writes the command with one ``XADD`` and acks once
Redis has answered: the least any durable ack must do.

    python bench/bare_bolt.py PORT [REDIS_URL]
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.authorization import AuthorizeResult

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.slack import SIGNING_SECRET


async def authorize(
    enterprise_id: str | None, team_id: str | None, user_id: str | None
) -> AuthorizeResult:
    return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, user_id=user_id)


STREAM = "bench:bare-bolt:commands"


def create_app(redis: aioredis.Redis | None = None) -> web.Application:
    bolt = AsyncApp(
        signing_secret=SIGNING_SECRET, authorize=authorize, process_before_response=True
    )

    if redis is None:

        @bolt.command("/rebalance")
        async def rebalance(ack: AsyncAck) -> None:
            await ack(text="ok")

    else:
        durable = redis

        @bolt.command("/rebalance")
        async def rebalance_durable(ack: AsyncAck, command: dict[str, str]) -> None:
            await durable.xadd(STREAM, {"command": command.get("text", "")})
            await ack(text="ok")

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/slack/events", events)
    app.router.add_get("/healthz", healthz)
    return app


async def serve(port: int, redis_url: str | None) -> None:
    redis = aioredis.Redis.from_url(redis_url) if redis_url else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_app(redis), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await stop.wait()
    await runner.cleanup()
    if redis is not None:
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
