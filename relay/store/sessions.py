"""Console and portal sessions in Redis, and the sign-in attempt counter per client.

A session is one JSON string at ``keys.console_session(sha256(session id))`` with
the session's lifetime as its expiry: the cookie carries the id, Redis only its
hash (a read of Redis does not hand out sessions). Failed sign-ins are counted
per client address in a window (``keys.console_signin``) to slow brute force.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis
from pydantic import BaseModel

from relay.store import keys

SessionKind = Literal["operator", "portal"]
SIGN_IN_WINDOW_S = 15 * 60
SIGN_IN_MAX_FAILURES = 5


class Session(BaseModel):
    """Who a cookie stands for: an operator, or a portal visitor bound to one subscription."""

    id: str
    kind: SessionKind
    csrf: str
    expires_at: int  # unix seconds
    subscription_id: str | None = None
    generation: int = 0  # the portal link's, checked against the current one on every request


def _key(session_id: str) -> str:
    return keys.console_session(hashlib.sha256(session_id.encode()).hexdigest())


class SessionStore:
    """Open, read and end sessions on one Redis client."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def open(
        self,
        kind: SessionKind,
        *,
        ttl_s: int,
        subscription_id: str | None = None,
        generation: int = 0,
    ) -> Session:
        session = Session(
            id=secrets.token_urlsafe(32),
            kind=kind,
            csrf=secrets.token_urlsafe(32),
            expires_at=int(time.time()) + ttl_s,
            subscription_id=subscription_id,
            generation=generation,
        )
        await self.redis.set(_key(session.id), session.model_dump_json(), ex=ttl_s)
        return session

    async def get(self, session_id: str | None) -> Session | None:
        """The live session of ``session_id``; None when unknown, ended or expired."""
        if not session_id or len(session_id) > 100:
            return None
        raw = await self.redis.get(_key(session_id))
        return Session.model_validate_json(raw) if raw else None

    async def close(self, session_id: str) -> None:
        await self.redis.delete(_key(session_id))


@dataclass(frozen=True, slots=True)
class SignInBudget:
    failures: int
    retry_after_s: int

    @property
    def exhausted(self) -> bool:
        return self.failures >= SIGN_IN_MAX_FAILURES


async def sign_in_budget(redis: aioredis.Redis, client: str) -> SignInBudget:
    """How many sign-ins ``client`` got wrong in the current window, and when it ends."""
    key = keys.console_signin(client)
    pipe = redis.pipeline(transaction=False)
    pipe.get(key)
    pipe.ttl(key)
    raw, ttl = await pipe.execute()
    return SignInBudget(int(raw or 0), max(int(ttl), 0))


async def record_sign_in_failure(redis: aioredis.Redis, client: str) -> int:
    """Count a failed sign-in; the window starts with the first failure."""
    key = keys.console_signin(client)
    pipe = redis.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, SIGN_IN_WINDOW_S, nx=True)
    count, _ = await pipe.execute()
    return int(count)
