"""Delivery results per minute, for the console's overview chart (docs/contract.md §10).

One small hash per epoch minute (``keys.delivery_minute``) counts the attempts
recorded in it by outcome; each expires :data:`KEEP_S` after its last write, so
the whole thing holds at most ~120 tiny hashes whatever the traffic. Workers add
their counts once per batched step (one pipelined round trip), not per attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis

from relay.store import keys
from relay.store.connection import text_map

KEEP_S = 2 * 3600
WINDOW_MINUTES = 60
OUTCOMES = ("succeeded", "failed", "dead")


@dataclass(frozen=True, slots=True)
class MinuteStat:
    """Attempts recorded in one minute (``minute`` is epoch minutes)."""

    minute: int
    succeeded: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.succeeded + self.failed


def minute_of(now_ms: int) -> int:
    return now_ms // 60_000


async def record_results(redis: aioredis.Redis, counts: Mapping[str, int], *, now_ms: int) -> None:
    """Add ``counts`` (outcome -> attempts) to the current minute."""
    wanted = {k: n for k, n in counts.items() if k in OUTCOMES and n > 0}
    if not wanted:
        return
    key = keys.delivery_minute(minute_of(now_ms))
    pipe = redis.pipeline(transaction=False)
    for outcome, n in wanted.items():
        pipe.hincrby(key, outcome, n)
    pipe.expire(key, KEEP_S)
    await pipe.execute()


async def last_hour(redis: aioredis.Redis, *, now_ms: int) -> list[MinuteStat]:
    """The last :data:`WINDOW_MINUTES` minutes, oldest first, the current one last."""
    current = minute_of(now_ms)
    minutes = list(range(current - WINDOW_MINUTES + 1, current + 1))
    pipe = redis.pipeline(transaction=False)
    for minute in minutes:
        pipe.hgetall(keys.delivery_minute(minute))
    stats = []
    for minute, raw in zip(minutes, await pipe.execute(), strict=True):
        fields = text_map(raw)
        failed = int(fields.get("failed", 0)) + int(fields.get("dead", 0))
        stats.append(MinuteStat(minute, int(fields.get("succeeded", 0)), failed))
    return stats
