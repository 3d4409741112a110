"""The cached portfolio list (App Home, ``/rebalance list``): one short-lived JSON value.

Shared by every web process, so a burst of Home tab opens walks Glider's list once
per :data:`LIST_CACHE_S`. A value that no longer parses is treated as absent.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from pydantic import ValidationError

from relay.core.listing import Listing
from relay.store import keys

LIST_CACHE_S = 30


async def cached_listing(redis: aioredis.Redis) -> Listing | None:
    """The cached list, or None when there is none (or it is unreadable)."""
    raw = await redis.get(keys.PORTFOLIO_LIST)
    if raw is None:
        return None
    try:
        return Listing.model_validate_json(raw)
    except ValidationError:
        return None


async def cache_listing(redis: aioredis.Redis, listing: Listing, ttl_s: int = LIST_CACHE_S) -> None:
    """Keep ``listing`` for ``ttl_s`` seconds."""
    await redis.set(keys.PORTFOLIO_LIST, listing.model_dump_json(), ex=ttl_s)
