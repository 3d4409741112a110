"""Webhook receivers for ``bench/relay.py`` (aiohttp on loopback, in a subprocess),
and a Redis database of its own for the run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.fixtures.redis_server import private_server

ROOT = Path(__file__).resolve().parent.parent


# --- receivers (a subprocess) ------------------------------------------------------


@dataclass
class _Tally:
    count: int = 0
    last: float = 0.0
    stamps: list[tuple[float, bytes]] = field(default_factory=list)


def _receiver_app(tally: _Tally) -> web.Application:
    marker = b'"timestamp":"'

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        tally.count += 1
        tally.last = now
        at = body.find(marker) + len(marker)
        tally.stamps.append((now, body[at : at + 24]))
        return web.Response(status=200)

    async def stats(request: web.Request) -> web.Response:
        latencies = [
            now - datetime.fromisoformat(stamp.decode().replace("Z", "+00:00")).timestamp()
            for now, stamp in tally.stamps
        ]
        return web.json_response({"count": tally.count, "last": tally.last, "latencies": latencies})

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"count": tally.count})

    async def reset(request: web.Request) -> web.Response:
        tally.count, tally.last, tally.stamps = 0, 0.0, []
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", stats)
    app.router.add_get("/count", count)
    app.router.add_post("/reset", reset)
    return app


def receiver_main(argv: list[str]) -> int:
    """Serve ``argv[0]`` receivers on loopback sharing one tally; print their ports."""

    async def serve() -> None:
        tally = _Tally()
        ports = []
        for _ in range(int(argv[0])):
            runner = web.AppRunner(_receiver_app(tally), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
            await site.start()
            ports.append(runner.addresses[0][1])
        print(json.dumps(ports), flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


@contextlib.asynccontextmanager
async def serve_receivers(count: int, script: str = "relay.py") -> AsyncIterator[list[int]]:
    """The receiver subprocess (``bench/<script> --receivers N``); yields its ports."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / script),
        "--receivers",
        str(count),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        yield [int(p) for p in json.loads(line)]
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=10)


@dataclass
class Receivers:
    """Talks to the receiver subprocess: reset, and wait for a delivery count."""

    control: aiohttp.ClientSession
    ports: list[int]

    def url(self, index: int, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.ports[index]}{path}"

    async def reset(self) -> None:
        async with self.control.post(self.url(0, "/reset")):
            pass

    async def wait_for(self, count: int, *, within: float = 300.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            async with self.control.get(self.url(0, "/count")) as response:
                if (await response.json())["count"] >= count:
                    break
            await asyncio.sleep(0.05)
        else:
            raise TimeoutError(f"fewer than {count} deliveries within {within} s")
        async with self.control.get(self.url(0, "/stats")) as response:
            stats: dict[str, Any] = await response.json()
            return stats


@contextlib.asynccontextmanager
async def private_database() -> AsyncIterator[str]:
    """A Redis server of the run's own (redis.conf, persistence off): its URL."""
    with private_server("--appendonly", "no") as (url, _pid):
        yield url
