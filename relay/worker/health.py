"""Liveness and readiness of a worker: ``/healthz`` and ``/readyz`` on ``WORKER_METRICS_PORT``.

A worker is ready when its store is (:class:`relay.store.health.StoreMonitor`:
reachable, accepting writes, not evicting) and every reader can read: each
reader notes its successful reads in a :class:`ReadProgress`, and one whose last
successful read is older than :data:`STALE_AFTER_S`, or that failed
:data:`FAILING_AFTER` reads in a row, is reported by name. So is every other loop
(heartbeats, handlers, polls, webhook steps, upkeep, the rate budget) whose Redis
calls keep failing (:class:`relay.store.faults.RedisFaults`).
"""

from __future__ import annotations

import time
from typing import Protocol

from aiohttp import web

from relay.core.clock import Seconds
from relay.store.faults import describe
from relay.store.health import StoreMonitor

STALE_AFTER_S = 30.0  # a blocking read returns at least every few seconds
FAILING_AFTER = 3  # reads failed in a row


class ReadProgress:
    """When a reader last read successfully, and how many reads failed since."""

    def __init__(self, name: str, *, clock: Seconds = time.monotonic) -> None:
        self.name = name
        self._clock = clock
        self.last_ok = clock()
        self.failures = 0
        self.last_error = ""

    def ok(self) -> None:
        """A read succeeded (even an empty one)."""
        self.last_ok = self._clock()
        self.failures = 0

    def failed(self, exc: BaseException) -> None:
        """A read failed with ``exc``."""
        self.failures += 1
        self.last_error = describe(exc)

    def problem(self) -> str | None:
        """Why this reader cannot read, or None while it reads."""
        if self.failures >= FAILING_AFTER:
            return f"{self.failures} reads failed in a row ({self.last_error})"
        stale = self._clock() - self.last_ok
        if stale > STALE_AFTER_S:
            return f"no successful read for {stale:.0f} s"
        return None


class Watched(Protocol):
    """Something readiness asks: a reader's :class:`ReadProgress`, or a loop's
    :class:`relay.store.faults.RedisFaults`."""

    name: str

    def problem(self) -> str | None:
        """Why it does not work now, or None."""
        ...


class WorkerHealth:
    """What ``/readyz`` of a worker looks at; readers are added as components start."""

    def __init__(self, monitor: StoreMonitor) -> None:
        self.monitor = monitor
        self.readers: list[Watched] = []
        self.started = False

    async def readyz(self, request: web.Request) -> web.Response:
        """200 when the store is fine and every reader reads; 503 naming what is not."""
        store = await self.monitor.check()
        problems = {r.name: p for r in self.readers if (p := r.problem()) is not None}
        ready = store.ready and self.started and not problems
        body = {
            "status": "ok" if ready else "unavailable",
            **store.as_json(),
            "started": self.started,
            "readers": problems,
        }
        return web.json_response(body, status=200 if ready else 503)

    def add_routes(self, app: web.Application) -> None:
        """``/healthz`` (the process answers) and ``/readyz`` on ``app``."""
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", self.readyz)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})
