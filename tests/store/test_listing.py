"""The cached portfolio list: kept for its TTL, shared, and an unreadable value is absent."""

from __future__ import annotations

import redis.asyncio as aioredis

from relay.core.listing import Listing, PortfolioRow
from relay.store import keys
from relay.store.listing import LIST_CACHE_S, cache_listing, cached_listing


async def test_a_cached_list_reads_back_and_expires(any_redis: aioredis.Redis) -> None:
    """What is cached reads back equal, under one key with the cache's TTL."""
    assert await cached_listing(any_redis) is None
    listing = Listing(rows=(PortfolioRow(portfolio_id="pf_1", name="A & <b>", status="active"),))
    await cache_listing(any_redis, listing)
    assert await cached_listing(any_redis) == listing
    assert 0 < await any_redis.ttl(keys.PORTFOLIO_LIST) <= LIST_CACHE_S


async def test_an_unreadable_cache_is_absent(any_redis: aioredis.Redis) -> None:
    """A value that does not parse (another version wrote it) is treated as no cache."""
    await any_redis.set(keys.PORTFOLIO_LIST, '{"rows": "nope"}')
    assert await cached_listing(any_redis) is None
