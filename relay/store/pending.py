"""Atomic operations on a consumer group's pending entries list (PEL), one Lua call each.

Every script takes the stream (and the dead-letter stream) as KEYS, so with the
``{gr}`` hash tag they run unchanged on Redis Cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from relay.store.connection import text, text_map

# XAUTOCLAIM the idle entries, then dead-letter those delivered too often (XADD to
# the dead stream + XACK), in one step so an entry is never both dead and pending.
_RECLAIM = """
local group, me, max_deliveries = ARGV[1], ARGV[2], tonumber(ARGV[6])
local errors = cjson.decode(ARGV[7])
local claimed = redis.call('XAUTOCLAIM', KEYS[1], group, me, ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local live, dead = {}, {}
for _, entry in ipairs(claimed[2]) do
  local id = entry[1]
  local pending = redis.call('XPENDING', KEYS[1], group, id, id, 1)
  local count = 1
  if pending[1] then count = tonumber(pending[1][4]) end
  if count > max_deliveries then
    local reason = 'delivered ' .. count .. ' times (max ' .. max_deliveries .. ')'
    if errors[id] then reason = reason .. '; last error: ' .. errors[id] end
    local fields = entry[2]
    for _, extra in ipairs({'dead_reason', reason, 'dead_stream', KEYS[1], 'dead_group', group,
                            'dead_entry', id, 'dead_deliveries', tostring(count)}) do
      table.insert(fields, extra)
    end
    local dead_id = redis.call('XADD', KEYS[2], '*', unpack(fields))
    redis.call('XACK', KEYS[1], group, id)
    table.insert(dead, {id, dead_id, entry[2], reason})
  else
    table.insert(live, {id, count, entry[2]})
  end
end
return {claimed[1], live, dead}
"""

# Refresh (IDLE 0) or hand back (IDLE = claim idle) entries this consumer still owns.
# Ownership is checked first so a consumer that stalled never steals an entry back.
_TOUCH = """
local group, me, idle = ARGV[1], ARGV[2], ARGV[3]
local lost = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('XPENDING', KEYS[1], group, id, id, 1, me)[1] then
    redis.call('XCLAIM', KEYS[1], group, me, 0, id, 'IDLE', idle, 'JUSTID')
  else
    table.insert(lost, id)
  end
end
return lost
"""

_DEAD_LETTER = """
local fields = cjson.decode(ARGV[3])
for _, extra in ipairs({'dead_reason', ARGV[4], 'dead_stream', KEYS[1], 'dead_group', ARGV[1],
                        'dead_entry', ARGV[2]}) do
  table.insert(fields, extra)
end
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  return redis.call('XADD', KEYS[2], '*', unpack(fields))
end
return false
"""

# XTRIM MINID below every group's lowest unacknowledged id (or its last-delivered id
# when nothing is pending) and below the age floor: only entries every group has
# acknowledged, and that are older than the retention, ever go.
_TRIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end
local function less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local floor = ARGV[1]
for _, flat in ipairs(groups) do
  local info = {}
  for i = 1, #flat, 2 do info[flat[i]] = flat[i + 1] end
  local bound = info['last-delivered-id']
  if tonumber(info['pending']) > 0 then
    bound = redis.call('XPENDING', KEYS[1], info['name'])[2]
  end
  if less(bound, floor) then floor = bound end
end
return redis.call('XTRIM', KEYS[1], 'MINID', floor)
"""

# Forget consumers that hold nothing and have been silent for long (old hostname:pid
# names); checked and deleted in one step so no entry can be handed to one meanwhile.
_PRUNE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local removed = 0
for _, flat in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #flat, 2 do info[flat[i]] = flat[i + 1] end
  if tonumber(info['pending']) == 0 and tonumber(info['idle']) > tonumber(ARGV[2])
     and info['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed = removed + 1
  end
end
return removed
"""


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
    next_cursor, live, dead = await redis.register_script(_RECLAIM)(
        keys=[stream, dead_stream],
        args=[
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
    """Set the idle time of entries ``consumer`` still owns; returns the ids it no longer owns.

    ``idle_ms=0`` is a heartbeat; ``idle_ms`` = the claim threshold hands the
    entries back so any consumer's next ``XAUTOCLAIM`` takes them at once.
    """
    if not entry_ids:
        return []
    lost = await redis.register_script(_TOUCH)(
        keys=[stream], args=[group, consumer, idle_ms, *entry_ids]
    )
    return [text(i) for i in lost]


async def dead_letter(
    redis: aioredis.Redis, delivery: PendingEntry, reason: str, *, dead_stream: str
) -> DeadEntry | None:
    """Acknowledge ``delivery`` and copy it to ``dead_stream`` with ``reason``.

    Returns None (and copies nothing) when the entry was acknowledged before.
    """
    flat = [part for pair in delivery.fields.items() for part in pair]
    moved = await redis.register_script(_DEAD_LETTER)(
        keys=[delivery.stream, dead_stream],
        args=[delivery.group, delivery.entry_id, json.dumps(flat), reason],
    )
    if not moved:
        return None
    return DeadEntry(delivery.entry_id, text(moved), dict(delivery.fields), reason)


async def trim_acknowledged(redis: aioredis.Redis, stream: str, *, older_than_ms: int) -> int:
    """Delete entries older than ``older_than_ms`` (epoch ms) that every group acknowledged.

    Returns how many went. A stream with no group yet is left whole.
    """
    trimmed = await redis.register_script(_TRIM)(keys=[stream], args=[f"{older_than_ms}-0"])
    return int(trimmed)


async def prune_consumers(
    redis: aioredis.Redis, stream: str, group: str, *, idle_ms: int, keep: str
) -> int:
    """Delete consumers of ``group`` with no pending entries, silent over ``idle_ms``."""
    removed = await redis.register_script(_PRUNE)(keys=[stream], args=[group, idle_ms, keep])
    return int(removed)
