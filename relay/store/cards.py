"""Job card state in Redis: its hash (``keys.card``) under its render lock (``keys.card_lock``).

The version is bumped by the steps that record states (enqueue, outcome apply); this
store reads the card with its request record in one MULTI (so the record is at least
as new as the version read). The lock and its settle are :class:`RenderLock`'s.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from relay.core.cards import CardState
from relay.core.records import RequestRecord
from relay.store import keys
from relay.store.connection import text_map
from relay.store.render_lock import RenderLock


class CardStore(RenderLock):
    """One request's card; ``token`` identifies this holder of its lock."""

    def __init__(self, redis: aioredis.Redis, request_id: str, *, lock_ms: int) -> None:
        super().__init__(redis, keys.card(request_id), keys.card_lock(request_id), lock_ms=lock_ms)
        self._request_id = request_id

    async def read(self) -> tuple[CardState, RequestRecord | None]:
        """The card and its request record, read in one MULTI."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(keys.card(self._request_id))
        pipe.hgetall(keys.request(self._request_id))
        card, record = await pipe.execute()
        found = RequestRecord.from_hash(record, self._request_id) if record else None
        return CardState.from_hash(text_map(card)), found
