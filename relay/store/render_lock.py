"""The render lock of a Slack message kept current (a job card, an on-call alert).

The message's hash holds ``v`` (latest version, bumped by the atomic step that
records a change), ``r`` (the version rendered) and where it lives (``ch``, ``ts``,
``via``). One renderer at a time holds the lock (``SET NX PX`` with a random
token) and renews or settles it through ``card_lock.lua``, which only the holder
can do: the rendered version never goes down, and the lock is kept while a newer
version waits, so Slack never sees an older state after a newer one.

A render runs in :meth:`RenderLock.holding`, which renews the lock every third of its
time while the holder lives (a lease with a keep-alive, as Redisson's lock watchdog
does): a live holder's slow Slack call never outlasts it, and a dead holder's lock
runs out within one lock time, so whoever takes over waits for that at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from relay.store.scripts import LuaScript

_LOCK = LuaScript("card_lock.lua")
# Waiting for a held lock: look again after 10 ms, then twice as long each time, up to this.
_FIRST_PAUSE_S = 0.01
_MAX_PAUSE_S = 0.25


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


class RenderLock:
    """The lock on one message's hash ``state_key``; ``token`` names this holder."""

    def __init__(
        self, redis: aioredis.Redis, state_key: str, lock_key: str, *, lock_ms: int
    ) -> None:
        self._redis = redis
        self._state_key = state_key
        self._lock_key = lock_key
        self._lock_ms = lock_ms
        self.token = new_token()

    def _keys(self) -> list[str]:
        return [self._state_key, self._lock_key]

    async def claim(self, *, wait_s: float = 0.0) -> bool:
        """Take the render lock; False when another renderer holds it (still, after
        ``wait_s`` spent waiting for the holder to let go or for its lock to run out)."""
        deadline = time.monotonic() + wait_s
        pause_s = _FIRST_PAUSE_S
        while not await self._redis.set(self._lock_key, self.token, nx=True, px=self._lock_ms):
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                return False
            # A live holder lets go within a few Slack calls; a dead one's lock runs out.
            ttl_ms = int(await self._redis.pttl(self._lock_key))
            await asyncio.sleep(min(pause_s, left_s, max(ttl_ms, 1) / 1000))
            pause_s = min(2 * pause_s, _MAX_PAUSE_S)
        return True

    @contextlib.asynccontextmanager
    async def holding(self) -> AsyncIterator[None]:
        """The body renders under the claimed lock, kept alive meanwhile; if the body
        raises, the lock is released (the change is rendered by a retry)."""
        keeper = asyncio.create_task(self._keep_alive())
        try:
            yield
        except BaseException:
            await _stopped(keeper)
            await self.release()
            raise
        await _stopped(keeper)

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self._lock_ms / 3000)
            try:
                if not await self.renew():
                    return  # lost: the body's next renew() says so before any Slack call
            except (RedisError, OSError):
                continue  # the body's own Redis calls meet the same fault and raise

    async def renew(self) -> bool:
        """Push the lock's expiry on before a Slack call; False when it is no longer ours."""
        reply = await _LOCK(self._redis, self._keys(), ["renew", self.token, self._lock_ms])
        return bool(int(reply[0]))

    async def release(self) -> None:
        """Give the lock up (after a failure: the change will be rendered by a retry)."""
        await _LOCK(self._redis, self._keys(), ["release", self.token, self._lock_ms])

    async def settle(
        self,
        version: int | None,
        *,
        via: str | None = None,
        channel: str | None = None,
        ts: str | None = None,
    ) -> Settled:
        """Record ``version`` as rendered (and where the message now lives); the lock is
        released unless a newer version waits."""
        args: list[Any] = [
            "settle",
            self.token,
            self._lock_ms,
            "" if version is None else version,
            via or "",
            channel or "",
            ts or "",
        ]
        ours, latest, rendered = await _LOCK(self._redis, self._keys(), args)
        return Settled(bool(int(ours)), int(latest), int(rendered))


async def _stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
