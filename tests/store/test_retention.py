"""Request records do not grow forever: a final record expires, and the index follows."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from relay.core import transitions
from relay.core.commands import Action, QueuedCommand, Requester
from relay.core.ids import new_id, ulid
from relay.store import keys, outcomes
from relay.store.connection import text
from relay.store.queue import enqueue
from relay.store.requests import RECORD_RETENTION_MS, RequestStore

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


async def _queued_record(redis: aioredis.Redis, portfolio_id: str) -> str:
    command = QueuedCommand(
        request_id=new_id("req"),
        action=Action.REBALANCE,
        portfolio_id=portfolio_id,
        requested_by=Requester(user_id="U1"),
    )
    await enqueue(redis, command)
    return command.request_id


async def test_final_record_expires_after_the_retention(any_redis: aioredis.Redis) -> None:
    """Open records never expire; the step that makes a record final gives it the retention TTL."""
    tracked_id = await _queued_record(any_redis, "pf_tracked")
    failed_id = await _queued_record(any_redis, "pf_failed")
    tracked = await RequestStore(any_redis).get(tracked_id)
    failing = await RequestStore(any_redis).get(failed_id)
    assert tracked is not None
    assert failing is not None
    submitted = transitions.submitted(tracked, NOW, "op-1", NOW, NOW + timedelta(seconds=2))
    assert (await outcomes.apply(any_redis, submitted)).applied
    failed = transitions.failed(failing, NOW, "glider_5xx", "Glider kept answering 503")
    assert (await outcomes.apply(any_redis, failed)).applied
    assert await any_redis.pttl(keys.request(tracked_id)) == -1
    ttl = await any_redis.pttl(keys.request(failed_id))
    assert RECORD_RETENTION_MS - 60_000 < ttl <= RECORD_RETENTION_MS


async def test_index_forgets_only_ids_older_than_the_horizon(any_redis: aioredis.Redis) -> None:
    """The request index drops ids made before the horizon and keeps newer ones."""
    now_ms = int(time.time() * 1000)
    old = [f"req_{ulid(now_ms - 40 * 86_400_000 + n)}" for n in range(3)]
    recent = [f"req_{ulid(now_ms - 86_400_000 + n)}" for n in range(2)]
    await any_redis.zadd(keys.REQUESTS, dict.fromkeys(old + recent, 0))
    horizon = now_ms - RECORD_RETENTION_MS
    assert await RequestStore(any_redis).forget_older_than(horizon) == 3
    members = await any_redis.zrange(keys.REQUESTS, 0, -1)
    remaining = {text(m) for m in members if isinstance(m, bytes | str)}
    assert remaining == set(recent)
