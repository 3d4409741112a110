"""Atomic operations on a consumer group's pending entries list (PEL), one Lua call each.

Every script (``relay/store/lua/pel_*.lua``, ``stream_trim.lua``) takes the stream (and
the dead-letter stream) as KEYS, so with the ``{gr}`` hash tag they run unchanged on
Redis Cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from relay.store.connection import text, text_map
from relay.store.scripts import LuaScript

_RECLAIM = LuaScript("pel_reclaim.lua")
_TOUCH = LuaScript("pel_touch.lua")
_DEAD_LETTER = LuaScript("pel_dead_letter.lua")
_TRIM = LuaScript("stream_trim.lua")
_PRUNE = LuaScript("pel_prune.lua")


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """One entry handed to a handler; the handler acknowledges it atomically with its outcome."""

    stream: str
    group: str
    entry_id: str
    fields: dict[str, str]
    delivery_count: int = 1

    @property
    def redelivered(self) -> bool:
        """True when an earlier delivery may have done part of the work."""
        return self.delivery_count > 1


@dataclass(frozen=True, slots=True)
class DeadEntry:
    """An entry moved to a dead-letter stream: its id there (``dead_id``), its fields, why."""

    entry_id: str
    dead_id: str
    fields: dict[str, str]
    reason: str


@dataclass(frozen=True, slots=True)
class Reclaimed:
    """What one ``XAUTOCLAIM`` pass took over: live entries, and the entries dead-lettered."""

    cursor: str
    deliveries: list[PendingEntry]
    dead: list[DeadEntry]


def entry_fields(raw: Any) -> dict[str, str]:
    """Stream entry fields from a dict (client parsing) or a flat list (Lua reply)."""
    if isinstance(raw, dict):
        return text_map(raw)
    items = [text(item) for item in raw]
    return dict(zip(items[::2], items[1::2], strict=True))


async def reclaim(
    redis: aioredis.Redis,
    stream: str,
    group: str,
    consumer: str,
    *,
    dead_stream: str,
    min_idle_ms: int,
    cursor: str,
    count: int,
    max_deliveries: int,
    errors: dict[str, str] | None = None,
) -> Reclaimed:
    """Claim up to ``count`` entries idle over ``min_idle_ms`` for ``consumer``.

    Entries already delivered more than ``max_deliveries`` times go to
    ``dead_stream`` instead (with ``errors[id]`` in their reason when known).
    """
    next_cursor, live, dead = await _RECLAIM(
        redis,
        [stream, dead_stream],
        [
            group,
            consumer,
            min_idle_ms,
            cursor,
            count,
            max_deliveries,
            json.dumps(errors or {}),
        ],
    )
    deliveries = [
        PendingEntry(stream, group, text(entry_id), entry_fields(fields), int(times))
        for entry_id, times, fields in live
    ]
    dead_entries = [
        DeadEntry(text(entry_id), text(dead_id), entry_fields(fields), text(reason))
        for entry_id, dead_id, fields, reason in dead
    ]
    return Reclaimed(text(next_cursor), deliveries, dead_entries)


async def touch(
    redis: aioredis.Redis,
    stream: str,
    group: str,
    consumer: str,
    entry_ids: list[str],
    *,
    idle_ms: int = 0,
) -> list[str]:
    """Set the idle time of entries ``consumer`` still owns; returns the ids another owns.

    ``idle_ms=0`` is a heartbeat; ``idle_ms`` = the claim threshold hands the
    entries back so any consumer's next ``XAUTOCLAIM`` takes them at once.
    """
    if not entry_ids:
        return []
    lost = await _TOUCH(redis, [stream], [group, consumer, idle_ms, *entry_ids])
    return [text(i) for i in lost]


async def dead_letter(
    redis: aioredis.Redis, delivery: PendingEntry, reason: str, *, dead_stream: str
) -> DeadEntry | None:
    """Acknowledge ``delivery`` and copy it to ``dead_stream`` with ``reason``.

    Returns None (and copies nothing) when the entry was acknowledged before.
    """
    flat = [part for pair in delivery.fields.items() for part in pair]
    moved = await _DEAD_LETTER(
        redis,
        [delivery.stream, dead_stream],
        [delivery.group, delivery.entry_id, json.dumps(flat), reason],
    )
    if not moved:
        return None
    return DeadEntry(delivery.entry_id, text(moved), dict(delivery.fields), reason)


async def trim_acknowledged(redis: aioredis.Redis, stream: str, *, older_than_ms: int) -> int:
    """Delete entries older than ``older_than_ms`` (epoch ms) that every group acknowledged.

    Returns how many went. A stream with no group yet is left whole.
    """
    trimmed = await _TRIM(redis, [stream], [f"{older_than_ms}-0"])
    return int(trimmed)


async def prune_consumers(
    redis: aioredis.Redis, stream: str, group: str, *, idle_ms: int, keep: str
) -> int:
    """Delete consumers of ``group`` with no pending entries, silent over ``idle_ms``."""
    removed = await _PRUNE(redis, [stream], [group, idle_ms, keep])
    return int(removed)
