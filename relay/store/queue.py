"""The durable command queue, producer side: one Redis Stream with a consumer group.

Enqueue is one Lua call, so a command is either fully accepted (stream entry,
request record, portfolio pointers, trigger-id marker, and for a rebalance its
``rebalance.requested`` event) or not at all, and a
retried Slack delivery (same ``trigger_id``) finds the first request instead of
queuing a second.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relay.core.audit import DETAIL_MAX, NAME_MAX, AuditAction
from relay.core.bounds import clip
from relay.core.clock import iso_ms
from relay.core.commands import Action, QueuedCommand
from relay.core.events import EventType
from relay.core.ids import sibling_id
from relay.core.redact import redact
from relay.store import keys
from relay.store.connection import text
from relay.store.requests import queued_fields
from relay.store.scripts import Arg, Call, LuaScript, NotRun

TRIGGER_TTL_S = 24 * 3600
# An in-flight marker outlives the poller's deadline (6 h) so a stuck marker can
# never block a portfolio for good.
INFLIGHT_TTL_S = 7 * 3600
# Event.body()'s JSON form; one encoder, as json.dumps(separators=...) builds one per call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))

# relay/store/lua/enqueue.lua checks the request's abandoned tombstone (relay/store/abandon.py)
# first: once the web has told the requester "not queued", a late copy does nothing. It then
# checks the request's own record: the client resends a pipeline after a dropped connection,
# and a second copy of an accepted request must not add a second stream entry.
# KEYS[9] is the audit log: the command's `command.received` entry (ARGV[5]) is appended
# in the same step as the command itself.
ENQUEUE = LuaScript("enqueue.lua")


class EnqueueStatus(StrEnum):
    QUEUED = "queued"  # a new entry is on the stream
    DUPLICATE = "duplicate"  # this trigger id was queued before: nothing new
    INFLIGHT = "inflight"  # a rebalance of this portfolio is still running: nothing new
    ABANDONED = "abandoned"  # the web declared this request not queued first: nothing new


class EnqueueNotSent(RedisConnectionError):
    """No connection to Redis could be made: the command never left this process."""


class EnqueueOutcomeUnknown(RedisError):
    """The command may have reached Redis, but no answer came: it may or may not be queued."""


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    status: EnqueueStatus
    request_id: str  # the new request, or the earlier one it matched


async def ensure_group(redis: aioredis.Redis, stream: str, group: str) -> bool:
    """Create ``group`` on ``stream`` (and the stream) unless it exists; True if it was created.

    It starts at ``0``, not ``$``: when Redis lost the group (a restart without
    persistence, ``FLUSHALL``, a failover to a replica behind), the web may have
    written commands since, and they must not be skipped.
    """
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
        return False
    return True


async def enqueue(redis: aioredis.Redis, command: QueuedCommand) -> EnqueueResult:
    """Accept ``command`` durably; idempotent on its ``trigger_id``.

    Raises ``redis.exceptions.RedisError`` when Redis fails; after a dropped connection
    the command may or may not be queued (the web's ack path uses
    :func:`enqueue_when_connected`, which tells the two apart).
    """
    script_keys, script_args = _script_call(command)
    result = await ENQUEUE(redis, script_keys, script_args)
    return _result(result)


async def enqueue_many(
    redis: aioredis.Redis, commands: Sequence[QueuedCommand]
) -> list[EnqueueResult | RedisError]:
    """Accept several commands in one round trip; see :func:`enqueue_when_connected`."""
    return await enqueue_when_connected(redis, lambda: commands)


async def enqueue_when_connected(
    redis: aioredis.Redis, take: Callable[[], Sequence[QueuedCommand]]
) -> list[EnqueueResult | RedisError]:
    """Connect, then accept the commands ``take()`` names at that moment, in one pipeline.

    Each command is atomic alone, and they run in order, so a later one sees an earlier
    one's trigger-id and in-flight markers. Raises :class:`EnqueueNotSent` when no
    connection could be made: then nothing was written, and ``take`` was not called. Once
    ``take`` has been called every failure is in the commands' slots: a reply error from
    Redis (an ``OutOfMemoryError`` means that script did not run), or
    :class:`EnqueueOutcomeUnknown` when the connection failed after the write may have left.
    """
    if isinstance(redis, RedisCluster):
        # Connections are made per node inside each call, so a failure is never provably
        # before the write: every one is an unknown outcome.
        commands = take()
        raw = await ENQUEUE.run_many(redis, [_script_call(command) for command in commands])
    else:
        pipe = redis.pipeline(transaction=False)
        try:
            pipe.connection = await redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise EnqueueNotSent(f"could not connect to Redis: {exc}") from exc
        commands = take()  # the callers still waiting, decided right before the write
        calls = [_script_call(command) for command in commands]
        try:
            raw = await ENQUEUE.run_many(redis, calls, pipe=pipe)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raw = [EnqueueOutcomeUnknown(f"no answer from Redis: {exc}")] * len(calls)
    return [_slot(r) for r in raw]


def _slot(raw: Any) -> EnqueueResult | RedisError:
    if isinstance(raw, NotRun):  # Redis had lost the script and it could not be loaded
        return EnqueueNotSent(str(raw))
    if isinstance(raw, RedisConnectionError | RedisTimeoutError):
        return EnqueueOutcomeUnknown(f"no answer from Redis: {raw}")
    return raw if isinstance(raw, RedisError) else _result(raw)


def _script_call(command: QueuedCommand) -> Call:
    """The enqueue script's keys and arguments for ``command``."""
    # The command was validated when it was built; the record and event below are
    # derived from one dump of it instead of validating RequestRecord and Event
    # models again (that cost more CPU than the Redis call itself).
    dumped = command.model_dump(mode="json")
    script_keys = [
        keys.COMMAND_STREAM,
        keys.trigger_seen(command.trigger_id or "-"),
        keys.request(command.request_id),
        keys.REQUESTS,
        keys.portfolio_latest(command.portfolio_id),
        keys.portfolio_inflight(command.portfolio_id),
        keys.EVENTS,
        keys.abandoned(command.request_id),
        keys.AUDIT,
        keys.card(command.request_id),
        keys.CARDS,
    ]
    # Few arguments, as redis.asyncio packs each in Python (redis-py#4176): the record is one
    # JSON object the script flattens for HSET, and only a rebalance sends its event.
    script_args: list[Arg] = [
        command.request_id,
        command.trigger_id or "",
        command.model_dump_json(),
        _COMPACT_JSON.encode(queued_fields(dumped)),
        received_entry(command),
        INFLIGHT_TTL_S,
        TRIGGER_TTL_S,
    ]
    if command.action is Action.REBALANCE:
        # Takes the portfolio's in-flight marker, and appends its requested event.
        script_args += (*requested_event_fields(command), command.traceparent or "")
    return script_keys, script_args


def received_entry(command: QueuedCommand) -> str:
    """The ``command.received`` audit entry appended with ``command``, as JSON.

    Equal to ``new_entry(COMMAND_RECEIVED, AuditActor.slack(...), ...)`` (pinned by a
    test), built without validating the models again: the command was validated, its
    Slack names are already cut to the entry's bounds, and this runs for every command.
    """
    requester = command.requested_by
    detail = command.action.value
    if command.reason:
        detail = f"{detail}: {command.reason}"
    timestamp = command.accepted_at.astimezone(UTC).isoformat()
    body = {
        "id": sibling_id("aud", command.request_id),
        "at": timestamp.replace("+00:00", "Z"),
        "actor": {
            "source": "slack",
            "teamId": _redacted(requester.team_id),
            "userId": _redacted(requester.user_id),
            "userName": _redacted(requester.user_name),
        },
        "action": AuditAction.COMMAND_RECEIVED.value,
        "portfolioId": redact(command.portfolio_id),  # typed by a user: may be a secret
        "requestId": command.request_id,
        "subscriptionId": None,
        "detail": clip(redact(detail), DETAIL_MAX),
    }
    return _COMPACT_JSON.encode(body)


def _redacted(value: str | None) -> str | None:
    return None if value is None else clip(redact(value), NAME_MAX)


def _result(raw: Any) -> EnqueueResult:
    status, request_id = (text(v) for v in raw)
    return EnqueueResult(EnqueueStatus(status), request_id)


def requested_event_fields(command: QueuedCommand) -> tuple[str, str, str]:
    """The ``rebalance.requested`` event as (id, type, body); empty for pause/resume.

    The body is byte for byte ``Event(...).body()`` (pinned by a test).
    """
    if command.action is not Action.REBALANCE:
        return ("", "", "")
    requester = command.requested_by
    body = {
        "type": EventType.REQUESTED.value,
        "timestamp": iso_ms(command.accepted_at),
        "data": {
            "requestId": command.request_id,
            "portfolioId": command.portfolio_id,
            "operationId": None,
            "state": "requested",
            "submittedAt": None,
            "finishedAt": None,
            "requestedBy": {
                "source": requester.source,
                "teamId": requester.team_id,
                "userId": requester.user_id,
                "userName": requester.user_name,
            },
            "error": None,
        },
    }
    event_id = sibling_id("evt", command.request_id)
    return (event_id, EventType.REQUESTED.value, _COMPACT_JSON.encode(body))
