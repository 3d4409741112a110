"""Cursor paging over a time-ordered index."""

from __future__ import annotations

import redis.asyncio as aioredis

from relay.store.paging import page_ids


async def test_pages_cover_the_index_newest_first(any_redis: aioredis.Redis) -> None:
    """Following nextCursor visits every id once, newest (largest) first, then stops."""
    ids = [f"req_{n:04d}" for n in range(7)]
    await any_redis.zadd("{gr}:test-index", dict.fromkeys(ids, 0))
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page, cursor = await page_ids(any_redis, "{gr}:test-index", cursor=cursor, limit=3)
        seen.extend(page)
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
