"""Settling an enqueue whose outcome is unknown: queued after all, or abandoned for good.

When the web's write of a command got no answer (a dropped connection, a slow
Redis), the script may still run: it may be in a socket buffer, a proxy, or a
packet being retransmitted. :func:`settle_many` is one atomic Lua step per
command that either finds the command queued, or writes a tombstone for its
request id. The enqueue script (relay/store/queue.py) checks that tombstone first, so
a copy arriving after "not queued" was decided does nothing. Whichever of the
two scripts Redis runs first wins, and the answer is the truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from relay.core.commands import QueuedCommand
from relay.store import keys
from relay.store.connection import text
from relay.store.scripts import Arg, Call, LuaScript

# How long a tombstone must outlive the write it cancels. A copy of the enqueue script
# can only run once Redis reads it off a connection. The web stops sending a batch 2 s
# after it started; bytes already written can still arrive while the kernel retransmits
# them, which Linux gives up after tcp_retries2 (default 15: about 15.5 min), or while a
# proxy or load balancer on the way holds them (its idle timeout: minutes). Once read,
# Redis runs a script at once. So no copy runs later than about 16 min after it was sent,
# and the tombstone is written after the send: 24 h is some 90 times that bound.
ABANDONED_TTL_S = 24 * 3600

_SETTLE = LuaScript("enqueue_settle.lua")


class Settlement(StrEnum):
    QUEUED = "queued"  # the write did land: the command is queued under its request id
    DUPLICATE = "duplicate"  # the same Slack command (trigger id) was queued earlier
    ABANDONED = "abandoned"  # not queued, and now it never will be


@dataclass(frozen=True, slots=True)
class Settled:
    status: Settlement
    request_id: str  # this request, or (DUPLICATE) the earlier one of the same command


async def settle_many(
    redis: aioredis.Redis, commands: Sequence[QueuedCommand]
) -> list[Settled | RedisError]:
    """Settle each command's unknown enqueue, in one round trip; errors in their slots.

    Idempotent: settling again gives the same answer, so a step that got no answer
    can simply be sent again. Raises ``RedisError`` when Redis cannot be reached.
    """
    raw = await _SETTLE.run_many(redis, [_call(command) for command in commands])
    return [r if isinstance(r, RedisError) else _settled(r) for r in raw]


def _call(command: QueuedCommand) -> Call:
    script_keys = [
        keys.request(command.request_id),
        keys.trigger_seen(command.trigger_id or "-"),
        keys.abandoned(command.request_id),
    ]
    args: list[Arg] = [command.trigger_id or "", command.request_id, ABANDONED_TTL_S]
    return script_keys, args


def _settled(raw: Any) -> Settled:
    status, request_id = (text(v) for v in raw)
    return Settled(Settlement(status), request_id)
