"""A healthy webhook subscriber for the chaos tests: notes when each request came, answers 204.

Each path is one subscriber. Every request is kept as a :class:`Hit` (arrival
time, ``webhook-id``, body), so a test can count distinct events per subscriber,
check that a repeated event came under the same ``webhook-id``, and measure
event-to-delivery latency. (Misbehaving subscribers live in bad_subscribers.py.)
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web


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

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path}"

    def events(self, path: str) -> dict[tuple[str, str], set[str]]:
        """Each event ``path`` received, with every ``webhook-id`` it came under."""
        found: dict[tuple[str, str], set[str]] = defaultdict(set)
        for hit in self.hits["/" + path]:
            found[hit.event].add(hit.webhook_id)
        return found

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        hit = Hit(request.path, request.headers.get("webhook-id", ""), time.time(), body)
        self.hits[request.path].append(hit)
        return web.Response(status=204)


async def start_sink() -> tuple[WebhookSink, web.AppRunner]:
    """A sink listening on 127.0.0.1; ``await runner.cleanup()`` when done."""
    sink = WebhookSink()
    app = web.Application()
    app.router.add_post("/{tail:.*}", sink.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    sink.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    return sink, runner
