"""Pending-list operations: ownership-checked heartbeat, safe trimming, consumer pruning."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from relay.store import pending
from relay.store.connection import text
from relay.store.queue import ensure_group
from tests.fixtures.worker import pending_rows, stream_entries

STREAM = "{gr}:test:pel"
FAR_FUTURE_MS = 2**42


async def _add(redis: aioredis.Redis, count: int) -> list[str]:
    return [text(await redis.xadd(STREAM, {"n": str(n)})) for n in range(count)]


async def _read(redis: aioredis.Redis, group: str, consumer: str, count: int) -> None:
    await redis.xreadgroup(group, consumer, {STREAM: ">"}, count=count)


async def test_touch_never_takes_back_an_entry_owned_by_another(any_redis: aioredis.Redis) -> None:
    """A heartbeat refreshes only entries still owned; a taken-over one is reported lost,
    one its own handler acknowledged just before is not (nobody else has it)."""
    await ensure_group(any_redis, STREAM, "g")
    first, second, done = await _add(any_redis, 3)
    await _read(any_redis, "g", "a", 3)
    await any_redis.xclaim(STREAM, "g", "b", 0, [second])
    await any_redis.xack(STREAM, "g", done)
    lost = await pending.touch(any_redis, STREAM, "g", "a", [first, second, done])
    assert lost == [second]
    owners = {
        row["message_id"]: row["consumer"] for row in await pending_rows(any_redis, STREAM, "g")
    }
    assert owners == {first: "a", second: "b"}


async def test_touch_with_idle_hands_entries_back(any_redis: aioredis.Redis) -> None:
    """Handing back sets the idle time so the next XAUTOCLAIM takes the entry at once."""
    await ensure_group(any_redis, STREAM, "g")
    [entry] = await _add(any_redis, 1)
    await _read(any_redis, "g", "a", 1)
    assert await pending.touch(any_redis, STREAM, "g", "a", [entry], idle_ms=30_000) == []
    claimed = await pending.reclaim(
        any_redis,
        STREAM,
        "g",
        "b",
        dead_stream=STREAM + ":dead",
        min_idle_ms=30_000,
        cursor="0-0",
        count=10,
        max_deliveries=5,
    )
    assert [d.entry_id for d in claimed.deliveries] == [entry]
    assert claimed.deliveries[0].delivery_count == 2


async def test_trim_keeps_everything_a_group_has_not_acknowledged(
    any_redis: aioredis.Redis,
) -> None:
    """Trimming stops at the slowest group's lowest pending (or undelivered) entry."""
    await ensure_group(any_redis, STREAM, "fast")
    await ensure_group(any_redis, STREAM, "slow")
    ids = await _add(any_redis, 6)
    await _read(any_redis, "fast", "f", 6)
    await any_redis.xack(STREAM, "fast", *ids)
    await _read(any_redis, "slow", "s", 4)
    await any_redis.xack(STREAM, "slow", ids[0], ids[1], ids[3])
    trimmed = await pending.trim_acknowledged(any_redis, STREAM, older_than_ms=FAR_FUTURE_MS)
    assert trimmed == 2
    remaining = [entry_id for entry_id, _ in await stream_entries(any_redis, STREAM)]
    assert remaining == ids[2:]


async def test_trim_respects_the_age_floor_and_undelivered_entries(
    any_redis: aioredis.Redis,
) -> None:
    """Entries newer than the floor, or not yet read by a group, are never trimmed."""
    await ensure_group(any_redis, STREAM, "g")
    ids = await _add(any_redis, 3)
    assert await pending.trim_acknowledged(any_redis, STREAM, older_than_ms=FAR_FUTURE_MS) == 0
    await _read(any_redis, "g", "c", 3)
    await any_redis.xack(STREAM, "g", *ids)
    floor_ms = int(ids[1].split("-")[0])
    await pending.trim_acknowledged(any_redis, STREAM, older_than_ms=floor_ms)
    remaining = [entry_id for entry_id, _ in await stream_entries(any_redis, STREAM)]
    assert ids[1] in remaining
    assert ids[2] in remaining


async def test_trim_leaves_a_stream_without_groups_whole(any_redis: aioredis.Redis) -> None:
    """No group has read anything yet: nothing may be trimmed."""
    await _add(any_redis, 2)
    assert await pending.trim_acknowledged(any_redis, STREAM, older_than_ms=FAR_FUTURE_MS) == 0
    assert await any_redis.xlen(STREAM) == 2


async def test_prune_removes_only_idle_empty_consumers(any_redis: aioredis.Redis) -> None:
    """Consumers holding entries, or the caller itself, survive pruning."""
    await ensure_group(any_redis, STREAM, "g")
    ids = await _add(any_redis, 3)
    await _read(any_redis, "g", "holder", 1)
    await _read(any_redis, "g", "done", 1)
    await _read(any_redis, "g", "me", 1)
    await any_redis.xack(STREAM, "g", ids[1], ids[2])
    removed = await pending.prune_consumers(any_redis, STREAM, "g", idle_ms=-1, keep="me")
    assert removed == 1
    consumers: Any = await any_redis.xinfo_consumers(STREAM, "g")
    names = {text(c["name"]) for c in consumers}
    assert names == {"holder", "me"}
