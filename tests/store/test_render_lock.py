"""The render lock's keep-alive: held as long as its holder renders, gone soon after."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis

from relay.store.render_lock import RenderLock
from tests.fixtures.worker import eventually

LOCK_MS = 300


def lock(redis: aioredis.Redis) -> RenderLock:
    return RenderLock(redis, "card:test", "card:test:lock", lock_ms=LOCK_MS)


async def test_a_render_longer_than_the_lock_keeps_it_then_it_runs_out(
    real_redis: aioredis.Redis,
) -> None:
    """A slow render (three lock times here) never loses the lock, and nobody else can
    take it meanwhile; once the holder stops keeping it, it runs out by itself."""
    holder, other = lock(real_redis), lock(real_redis)
    assert await holder.claim()
    started = time.monotonic()

    async def still_held_after_three_lock_times() -> bool:
        assert await real_redis.get("card:test:lock") == holder.token.encode()
        assert not await other.claim()
        return time.monotonic() - started > 3 * LOCK_MS / 1000

    async with holder.holding():
        await eventually(still_held_after_three_lock_times, within=10)
        assert await holder.renew()
    # Left without a settle (as a holder that died would leave it): it runs out.
    await eventually(other.claim, within=5 * LOCK_MS / 1000)


async def test_a_render_that_raises_releases_the_lock(real_redis: aioredis.Redis) -> None:
    holder = lock(real_redis)
    assert await holder.claim()
    with pytest.raises(RuntimeError):
        async with holder.holding():
            raise RuntimeError("slack said no")
    assert await real_redis.exists("card:test:lock") == 0
    assert await lock(real_redis).claim()
