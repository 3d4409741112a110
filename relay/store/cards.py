"""Job card state in Redis: its hash (``keys.card``) and its render lock (``keys.card_lock``).

The version is bumped by the steps that record states (enqueue, outcome apply); this
store reads the card with its request record in one MULTI (so the record is at least
as new as the version read), takes the lock (``SET NX PX`` with a random token), and
renews or settles it through ``card_lock.lua``, which only the holder can do.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from relay.core.cards import CardState, Via
from relay.core.records import RequestRecord
from relay.store import keys
from relay.store.connection import text_map
from relay.store.scripts import LuaScript

_LOCK = LuaScript("card_lock.lua")


@dataclass(frozen=True, slots=True)
class Settled:
    """What a settle found: whether the lock was still ours, and whether it still is
    (something newer than what was rendered waits: render again)."""

    ours: bool
    latest: int
    rendered: int

    @property
    def more(self) -> bool:
        return self.ours and self.latest > self.rendered


def new_token() -> str:
    return secrets.token_hex(12)


class CardStore:
    """One request's card; ``token`` identifies this holder of its lock."""

    def __init__(self, redis: aioredis.Redis, request_id: str, *, lock_ms: int) -> None:
        self._redis = redis
        self._request_id = request_id
        self._lock_ms = lock_ms
        self.token = new_token()

    def _keys(self) -> list[str]:
        return [keys.card(self._request_id), keys.card_lock(self._request_id)]

    async def claim(self) -> bool:
        """Take the render lock; False when another notifier holds it."""
        taken = await self._redis.set(
            keys.card_lock(self._request_id), self.token, nx=True, px=self._lock_ms
        )
        return bool(taken)

    async def read(self) -> tuple[CardState, RequestRecord | None]:
        """The card and its request record, read in one MULTI."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(keys.card(self._request_id))
        pipe.hgetall(keys.request(self._request_id))
        card, record = await pipe.execute()
        found = RequestRecord.from_hash(record, self._request_id) if record else None
        return CardState.from_hash(text_map(card)), found

    async def renew(self) -> bool:
        """Push the lock's expiry on before a Slack call; False when it is no longer ours."""
        reply = await _LOCK(self._redis, self._keys(), ["renew", self.token, self._lock_ms])
        return bool(int(reply[0]))

    async def release(self) -> None:
        """Give the lock up (after a failure: the entry will be retried)."""
        await _LOCK(self._redis, self._keys(), ["release", self.token, self._lock_ms])

    async def settle(
        self,
        version: int | None,
        *,
        via: Via | None = None,
        channel: str | None = None,
        ts: str | None = None,
    ) -> Settled:
        """Record ``version`` as rendered (and where the card now lives); the lock is
        released unless a newer version waits."""
        args: list[Any] = [
            "settle",
            self.token,
            self._lock_ms,
            "" if version is None else version,
            via.value if via is not None else "",
            channel or "",
            ts or "",
        ]
        ours, latest, rendered = await _LOCK(self._redis, self._keys(), args)
        return Settled(bool(int(ours)), int(latest), int(rendered))
