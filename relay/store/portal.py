"""Revocation of partner-portal links: one counter per subscription (``keys.portal_generation``).

A link carries the generation it was issued under; revoking bumps the counter,
so every earlier link (and every portal session opened with one) stops working.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from relay.store import keys


async def generation(redis: aioredis.Redis, subscription_id: str) -> int:
    raw = await redis.get(keys.portal_generation(subscription_id))
    return int(raw or 0)


async def revoke(redis: aioredis.Redis, subscription_id: str) -> int:
    """Revoke every link issued so far for ``subscription_id``; the new generation."""
    return int(await redis.incr(keys.portal_generation(subscription_id)))
