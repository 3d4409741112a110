"""Misbehaving webhook subscribers in their own process (``python -m tests.chaos.bad_subscribers``).

``/hang`` never answers, ``/reset`` drops the connection, ``/error`` answers 500.
Run apart from the test so that their traffic cannot slow the healthy subscriber's
clock. Prints ``listening <port>`` once it serves, and on SIGTERM prints how many
requests each path got as one JSON line before it exits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections import Counter

from aiohttp import web

SEEN: Counter[str] = Counter()
_closing = asyncio.Event()


async def handle(request: web.Request) -> web.StreamResponse:
    await request.read()
    SEEN[request.path] += 1
    if request.path == "/hang":
        await _closing.wait()
        return web.Response(status=503)
    if request.path == "/reset":
        assert request.transport is not None
        request.transport.abort()
        raise ConnectionResetError("reset by the bad subscriber")
    return web.Response(status=500, text="internal error")


async def serve() -> None:
    # A reset is this process's job, not an error worth a traceback per request.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(f"listening {runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    _closing.set()
    await runner.cleanup()
    print(json.dumps(dict(SEEN)), flush=True)


if __name__ == "__main__":
    asyncio.run(serve())
    sys.exit(0)
