"""``relay.store.connection.connect`` on a Redis Cluster URL: fresh clients, used concurrently."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from relay.store import keys
from relay.store.connection import connect

COUNTER = keys.PREFIX + ":burst"


async def burst(url: str, tasks: int, calls: int) -> None:
    """``tasks`` tasks start at once on a new client, each making ``calls`` script calls."""
    client = connect(url)
    script = client.register_script("return redis.call('INCR', KEYS[1])")

    async def one_task() -> None:
        for _ in range(calls):
            await script(keys=[COUNTER], args=[])

    try:
        await asyncio.gather(*(one_task() for _ in range(tasks)))
    finally:
        await client.aclose()


async def test_fresh_cluster_client_survives_a_burst_of_first_calls(
    redis_cluster_url: str, cluster_redis: aioredis.Redis
) -> None:
    """Thirty tasks start at once on a new client, as a worker's components do: their first
    script calls (some routed to the wrong node and MOVED) all succeed, and none loses its
    connection to another task's recovery (redis-py's re-initialisation after 5 MOVEDs)."""
    for _ in range(3):
        await burst(redis_cluster_url, tasks=30, calls=5)
    assert int(await cluster_redis.get(COUNTER) or 0) == 3 * 30 * 5
