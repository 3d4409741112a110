"""The poll schedule: claiming due polls with a lease and handing unfinished ones back.

Every tracked request sits in ``keys.POLL_DUE`` scored by its next poll time
(ms). A claim moves each taken entry's score to the lease's end, in one step
(``relay/store/lua/poll_claim.lua``), so the entries of a poller that dies come
due again for any worker.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from relay.store import keys
from relay.store.connection import text
from relay.store.scripts import LuaScript

_CLAIM = LuaScript("poll_claim.lua")
_HAND_BACK = LuaScript("poll_hand_back.lua")


async def claim_due(
    redis: aioredis.Redis, *, now_ms: int, lease_until_ms: int, room: int
) -> list[str]:
    """Up to ``room`` request ids due at ``now_ms``, leased until ``lease_until_ms``."""
    claimed = await _CLAIM(redis, [keys.POLL_DUE], [now_ms, lease_until_ms, room])
    return [text(raw) for raw in claimed]


async def hand_back(
    redis: aioredis.Redis, request_ids: list[str], *, now_ms: int, lease_until_ms: int
) -> int:
    """Make due now the requests still under the lease ending ``lease_until_ms``; how many."""
    if not request_ids:
        return 0
    back = await _HAND_BACK(redis, [keys.POLL_DUE], [now_ms, lease_until_ms, *request_ids])
    return int(back)
