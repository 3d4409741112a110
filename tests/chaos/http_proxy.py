"""An HTTP proxy of our own in front of the Glider simulator that breaks requests on purpose.

Per request (seeded, so a run can be repeated) and bounded in count, it may:

- ``reset_before``: drop the client's connection without forwarding (Glider never saw it);
- ``reset_after``: forward, let Glider answer, then drop the connection (Glider ran it,
  the answer is lost);
- ``truncate``: forward, then send the status line, headers and only half of the body
  before dropping the connection;
- ``delay``: forward, then hold the answer ``delay_s`` (longer than the client's timeout).

Every forwarded request and every fault is recorded, so a test can tell which commands
Glider never answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum

import aiohttp
from aiohttp import web

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
)


class FaultKind(StrEnum):
    RESET_BEFORE = "reset_before"
    RESET_AFTER = "reset_after"
    TRUNCATE = "truncate"
    DELAY = "delay"


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    method: str
    path: str


@dataclass
class ProxyConfig:
    rate: float = 0.08  # share of requests faulted
    max_faults: int = 60  # faults in all, then everything passes
    delay_s: float = 4.0
    kinds: tuple[FaultKind, ...] = tuple(FaultKind)
    seed: int = 10


@dataclass
class FaultyProxy:
    """The proxy's state: what it forwarded and what it broke."""

    upstream: str
    config: ProxyConfig
    url: str = ""
    received: int = 0  # requests in all
    forwarded: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    faults: list[Fault] = field(default_factory=list)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    _rng: random.Random = field(default_factory=random.Random)
    _session: aiohttp.ClientSession | None = None

    def _draw(self) -> FaultKind | None:
        if len(self.faults) >= self.config.max_faults:
            return None
        if self._rng.random() >= self.config.rate:
            return None
        return self._rng.choice(self.config.kinds)

    def faulted(self, method: str, path_suffix: str) -> list[Fault]:
        """The faults of requests with ``method`` whose path ends with ``path_suffix``."""
        return [f for f in self.faults if f.method == method and f.path.endswith(path_suffix)]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received += 1
        kind = self._draw()
        path = request.rel_url.raw_path_qs
        if kind is not None:
            self.faults.append(Fault(kind, request.method, path))
        if kind is FaultKind.RESET_BEFORE:
            return _reset(request)
        status, headers, body = await self._forward(request)
        if kind is FaultKind.RESET_AFTER:
            return _reset(request)
        if kind is FaultKind.DELAY:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), self.config.delay_s)
        if kind is FaultKind.TRUNCATE:
            return await _truncated(request, status, headers, body)
        return web.Response(status=status, headers=headers, body=body)

    async def _forward(self, request: web.Request) -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers.pop("Host", None)
        url = self.upstream + request.rel_url.raw_path_qs
        self.forwarded.append((request.method, request.rel_url.raw_path_qs))
        async with self._session.request(
            request.method, url, headers=headers, data=await request.read()
        ) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
            return answer.status, kept, body


def _reset(request: web.Request) -> web.StreamResponse:
    """Drop the connection with an RST, as a crashing load balancer would."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError  # nothing more to send on this connection


async def _truncated(
    request: web.Request, status: int, headers: dict[str, str], body: bytes
) -> web.StreamResponse:
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    return _reset(request)


@contextlib.asynccontextmanager
async def faulty_proxy(upstream: str, config: ProxyConfig) -> AsyncIterator[FaultyProxy]:
    """A :class:`FaultyProxy` listening on a free loopback port in front of ``upstream``."""
    proxy = FaultyProxy(upstream.rstrip("/"), config, _rng=random.Random(config.seed))
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    proxy.url = f"http://{host}:{port}"
    async with aiohttp.ClientSession() as session:
        proxy._session = session
        try:
            yield proxy
        finally:
            proxy.closing.set()
            await runner.cleanup()
