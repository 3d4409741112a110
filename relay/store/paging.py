"""Cursor paging over the store's time-ordered indexes (sorted sets of prefixed ULIDs).

Every index of ids (requests, subscriptions, deliveries) is a sorted set whose members all
have score 0, so lexical order is time order; a cursor is the last id a page returned.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import redis.asyncio as aioredis

from relay.store.connection import text

# A ULID as relay/core/ids.py writes it: upper-case Crockford base32. Any other text would
# still be a valid lexical bound, silently an empty page or the first one again.
_ULID = "[0-9A-HJKMNP-TV-Z]{26}"


def is_cursor(value: str, prefix: str) -> bool:
    """Whether ``value`` can be a cursor of an index of ``prefix`` ids (``sub``, ``dlv``,
    ``req``): that prefix, ``_`` and a ULID."""
    return re.fullmatch(f"{re.escape(prefix)}_{_ULID}", value) is not None


async def page_ids(
    redis: aioredis.Redis, index: str, *, cursor: str | None, limit: int
) -> tuple[list[str], str | None]:
    """Newest-first ids from a lexically ordered index, after ``cursor`` (an id; callers
    check one from outside with :func:`is_cursor`).

    Returns up to ``limit`` ids and the cursor of the next page (None on the last one).
    """
    upper = f"({cursor}" if cursor else "+"
    raw: Sequence[bytes | str] = await redis.zrevrangebylex(
        index, upper, "-", start=0, num=limit + 1
    )
    ids = [text(item) for item in raw]
    if len(ids) > limit:
        return ids[:limit], ids[limit - 1]
    return ids, None
