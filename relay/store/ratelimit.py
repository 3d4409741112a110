"""The Glider request budget that all workers share: GCRA in Redis, one Lua call per request.

GCRA (the generic cell rate algorithm) keeps one number, the theoretical
arrival time (TAT) of the next request. Each request *reserves* a slot: it
moves the TAT one emission interval on and learns how long to wait for its
slot, so every worker on every machine draws from one budget of
``GLIDER_MAX_RPS``, first come first served, with no polling of the bucket.
A 429 from Glider pushes the TAT past its ``Retry-After``: everyone slows down.

A reservation is a promise to send at the slot's time. A process that is descheduled
while it sleeps (a busy host) wakes late, and all its missed slots would go out at
once beside the others' punctual ones: Glider would see a burst above the budget. So a
slot missed by more than one interval (20 ms at least) is given up and a new one
reserved.

Times are integer microseconds. Redis's own clock is the default so that
workers with skewed clocks still agree; tests pass their own ``now``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from relay.core.clock import Seconds
from relay.store import keys
from relay.store.scripts import LuaScript

Sleep = Callable[[float], Awaitable[None]]

# A request that keeps waking late is sent after this many fresh reservations anyway.
LATE_RESERVATIONS = 3
MIN_SLACK_S = 0.02

_RESERVE = LuaScript("ratelimit_reserve.lua")
_PENALIZE = LuaScript("ratelimit_penalize.lua")


@dataclass(frozen=True, slots=True)
class Reservation:
    """Outcome of one GCRA reservation: the new TAT and the wait for this slot (µs)."""

    tat_us: int
    wait_us: int


def gcra_reserve(tat_us: int, now_us: int, interval_us: int, tolerance_us: int) -> Reservation:
    """Pure GCRA: reserve the next slot at ``now_us`` given the stored TAT (0 when none)."""
    tat = max(tat_us, now_us)
    wait = max(0, tat - tolerance_us - now_us)
    return Reservation(tat + interval_us, wait)


def gcra_penalize(tat_us: int, now_us: int, retry_after_us: int) -> int:
    """The TAT after a 429: no slot opens before ``now + retry_after``."""
    return max(tat_us, now_us + retry_after_us)


def interval_us(max_rps: float) -> int:
    """Microseconds between requests at ``max_rps``."""
    return max(1, math.ceil(1_000_000 / max_rps))


class SharedRateLimiter:
    """The ``rate_limiter`` hook of ``GliderClient``: ``await acquire()`` before each request."""

    def __init__(
        self,
        redis: aioredis.Redis,
        max_rps: float,
        *,
        burst: int = 1,
        key: str = keys.GLIDER_BUCKET,
        clock: Seconds | None = None,  # seconds since the epoch
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if max_rps <= 0 or burst < 1:
            raise ValueError("max_rps must be positive and burst at least 1")
        self._redis = redis
        self._key = key
        self._interval_us = interval_us(max_rps)
        # How late a slot may still be used: one interval, and at high rates 20 ms (an
        # event loop is often that late; the budget then stretches by at most 2%).
        self._slack_s = max(self._interval_us / 1_000_000, MIN_SLACK_S)
        self._tolerance_us = (burst - 1) * self._interval_us
        self._clock = clock
        self._sleep = sleep

    def _now_arg(self) -> str:
        return "" if self._clock is None else str(int(self._clock() * 1_000_000))

    async def reserve(self) -> float:
        """Take the next slot of the shared budget; seconds until it opens."""
        wait_us = await _RESERVE(
            self._redis, [self._key], [self._now_arg(), self._interval_us, self._tolerance_us]
        )
        return int(wait_us) / 1_000_000

    async def acquire(self) -> None:
        """Wait until this request's slot of the shared budget opens; a slot missed by
        more than one interval (a late wake-up) is traded for a new one."""
        for _ in range(LATE_RESERVATIONS):
            started = self._local_now()
            wait = await self.reserve()
            if wait > 0:
                await self._sleep(wait)
            if self._local_now() - started - wait <= self._slack_s:
                return

    def _local_now(self) -> float:
        return self._clock() if self._clock is not None else time.monotonic()

    async def penalize(self, retry_after_s: float) -> None:
        """Glider said 429: no worker sends anything for ``retry_after_s``."""
        await _PENALIZE(self._redis, [self._key], [self._now_arg(), int(retry_after_s * 1_000_000)])
