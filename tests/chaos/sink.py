"""Webhook subscribers for the chaos tests: a loopback server that notes when each request came.

Each path is one subscriber. It answers 200 unless told to misbehave: answer a
status, hang until the sink closes, or reset the connection. Every request is
kept as a :class:`Hit` (arrival time, ``webhook-id``, body), so a test can count
distinct events per subscriber and measure event-to-delivery latency.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Hit:
    """One request a subscriber received."""

    path: str
    webhook_id: str
    at: float  # time.time() on arrival
    body: bytes

    @property
    def event(self) -> tuple[str, str]:
        """(requestId, type): what the event is about, whichever ``webhook-id`` it came under."""
        payload = json.loads(self.body)
        return payload["data"]["requestId"], payload["type"]

    @property
    def latency_s(self) -> float:
        """Seconds from the event's own timestamp to its arrival here."""
        stamp = json.loads(self.body)["timestamp"]
        return self.at - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass
class WebhookSink:
    """Subscriber endpoints on one loopback server; ``url(path)`` is a subscription URL."""

    base_url: str = ""
    hits: dict[str, list[Hit]] = field(default_factory=lambda: defaultdict(list))
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path}"

    def answer(self, path: str, status: int) -> str:
        """Answer every request to ``path`` with ``status``; returns the URL."""

        async def respond(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status)

        self.behaviours["/" + path] = respond
        return self.url(path)

    def hang(self, path: str) -> str:
        """Never answer ``path`` (until the sink closes): the sender times out."""

        async def respond(request: web.Request) -> web.StreamResponse:
            await self.closing.wait()
            return web.Response(status=503)

        self.behaviours["/" + path] = respond
        return self.url(path)

    def reset(self, path: str) -> str:
        """Drop the connection on every request to ``path`` without answering."""

        async def respond(request: web.Request) -> web.StreamResponse:
            assert request.transport is not None
            request.transport.abort()
            raise ConnectionResetError("reset by the chaos sink")

        self.behaviours["/" + path] = respond
        return self.url(path)

    def events(self, path: str) -> dict[tuple[str, str], set[str]]:
        """Each event ``path`` received, with every ``webhook-id`` it came under."""
        found: dict[tuple[str, str], set[str]] = defaultdict(set)
        for hit in self.hits["/" + path]:
            found[hit.event].add(hit.webhook_id)
        return found

    def duplicates(self, path: str) -> int:
        """Requests beyond the first per ``webhook-id`` (at-least-once redeliveries)."""
        hits = self.hits["/" + path]
        return len(hits) - len({hit.webhook_id for hit in hits})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        hit = Hit(request.path, request.headers.get("webhook-id", ""), time.time(), body)
        self.hits[request.path].append(hit)
        behaviour = self.behaviours.get(request.path)
        if behaviour is None:
            return web.Response(status=204)
        return await behaviour(request)


async def start_sink() -> tuple[WebhookSink, web.AppRunner]:
    """A sink listening on 127.0.0.1; clean it up with ``close_sink``."""
    sink = WebhookSink()
    app = web.Application()
    app.router.add_post("/{tail:.*}", sink.handle)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    sink.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    return sink, runner


async def close_sink(sink: WebhookSink, runner: web.AppRunner) -> None:
    sink.closing.set()
    await runner.cleanup()
