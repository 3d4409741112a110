"""The durable command queue, producer side: one Redis Stream with a consumer group.

Enqueue is one Lua call, so a command is either fully accepted (stream entry,
request record, portfolio pointers, trigger-id marker, and for a rebalance its
``rebalance.requested`` event) or not at all, and a
retried Slack delivery (same ``trigger_id``) finds the first request instead of
queuing a second.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relay.core.clock import iso_ms
from relay.core.commands import Action, QueuedCommand
from relay.core.events import EventType
from relay.core.ids import new_id
from relay.store import keys
from relay.store.connection import text
from relay.store.requests import queued_fields

TRIGGER_TTL_S = 24 * 3600
# An in-flight marker outlives the poller's deadline (6 h) so a stuck marker can
# never block a portfolio for good.
INFLIGHT_TTL_S = 7 * 3600
# Event.body()'s JSON form; one encoder, as json.dumps(separators=...) builds one per call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))

# KEYS[8] is the request's abandoned tombstone (relay/store/abandon.py): once the web has told the
# requester "not queued", a copy of this script arriving late must do nothing. KEYS[3] is the
# request's own record: the client resends a pipeline after a dropped connection, and a
# second copy of an accepted request must not add a second stream entry.
_ENQUEUE = """
local trigger_id, request_id, command = ARGV[1], ARGV[2], ARGV[3]
local check_inflight, inflight_ttl, trigger_ttl = ARGV[4], ARGV[5], ARGV[6]
if redis.call('EXISTS', KEYS[8]) == 1 then return {'abandoned', request_id} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {'queued', request_id} end
if trigger_id ~= '' then
  local prev = redis.call('GET', KEYS[2])
  if prev then return {'duplicate', prev} end
end
if check_inflight == '1' then
  local current = redis.call('GET', KEYS[6])
  if current then return {'inflight', current} end
  redis.call('SET', KEYS[6], request_id, 'EX', inflight_ttl)
end
redis.call('XADD', KEYS[1], '*', 'command', command)
if ARGV[7] ~= '' then
  redis.call('XADD', KEYS[7], '*', 'id', ARGV[7], 'type', ARGV[8], 'body', ARGV[9],
             'traceparent', ARGV[11])
end
local record, fields = cjson.decode(ARGV[10]), {}
for name, value in pairs(record) do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
redis.call('HSET', KEYS[3], unpack(fields))
redis.call('ZADD', KEYS[4], 0, request_id)
redis.call('SET', KEYS[5], request_id)
if trigger_id ~= '' then redis.call('SET', KEYS[2], request_id, 'EX', trigger_ttl) end
return {'queued', request_id}
"""
# EVALSHA's name for the script, computed once rather than by register_script per batch.
_ENQUEUE_SHA = hashlib.sha1(_ENQUEUE.encode(), usedforsecurity=False).hexdigest()


class EnqueueStatus(StrEnum):
    QUEUED = "queued"  # a new entry is on the stream
    DUPLICATE = "duplicate"  # this trigger id was queued before: nothing new
    INFLIGHT = "inflight"  # a rebalance of this portfolio is still running: nothing new
    ABANDONED = "abandoned"  # the web declared this request not queued first: nothing new


class EnqueueNotSent(RedisConnectionError):
    """No connection to Redis could be made: the command never left this process."""


class EnqueueOutcomeUnknown(RedisError):
    """The command may have reached Redis, but no answer came: it may or may not be queued."""


_Call = tuple[list[str], list[str | int]]


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
    result = await redis.register_script(_ENQUEUE)(keys=script_keys, args=script_args)
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
        calls = [_script_call(command) for command in commands]
        raw = [await _evalsha_one(redis, _ENQUEUE_SHA, call) for call in calls]
    else:
        pipe = redis.pipeline(transaction=False)
        try:
            pipe.connection = await redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise EnqueueNotSent(f"could not connect to Redis: {exc}") from exc
        commands = take()  # the callers still waiting, decided right before the write
        calls = [_script_call(command) for command in commands]
        raw = await _pipeline_results(pipe, calls)
    results = [_slot(r) for r in raw]
    return await _reload_and_resend(redis, commands, results)


async def _pipeline_results(pipe: Any, calls: list[_Call]) -> list[Any]:
    """EVALSHA each call on ``pipe`` (already holding its connection); errors in the slots."""
    if not calls:
        await pipe.reset()  # releases the connection
        return []
    for script_keys, script_args in calls:
        pipe.evalsha(_ENQUEUE_SHA, len(script_keys), *script_keys, *script_args)
    try:
        results: list[Any] = await pipe.execute(raise_on_error=False)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        return [EnqueueOutcomeUnknown(f"no answer from Redis: {exc}")] * len(calls)
    return results


def _slot(raw: Any) -> EnqueueResult | RedisError:
    if isinstance(raw, RedisConnectionError | RedisTimeoutError):
        return EnqueueOutcomeUnknown(f"no answer from Redis: {raw}")
    return raw if isinstance(raw, RedisError) else _result(raw)


async def _reload_and_resend(
    redis: aioredis.Redis,
    commands: Sequence[QueuedCommand],
    results: list[EnqueueResult | RedisError],
) -> list[EnqueueResult | RedisError]:
    """Send again the commands that got NOSCRIPT (not executed at all: a restarted Redis)."""
    missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
    if not missing:
        return results
    again: list[EnqueueResult | RedisError]
    try:
        await redis.script_load(_ENQUEUE)
        again = await enqueue_when_connected(redis, lambda: [commands[i] for i in missing])
    except RedisError as exc:  # loading failed: those commands still never ran
        again = [EnqueueNotSent(f"could not load the enqueue script: {exc}")] * len(missing)
    for index, result in zip(missing, again, strict=True):
        results[index] = result
    return results


async def evalsha_all(redis: aioredis.Redis, sha: str, calls: list[_Call]) -> list[Any]:
    """EVALSHA each call in one round trip (one after another on Cluster); errors in slots."""
    if isinstance(redis, RedisCluster):
        # redis-py refuses scripts in a cluster pipeline. Every key is in one slot, so
        # one call after another on that node keeps the order (each still atomic).
        return [await _evalsha_one(redis, sha, call) for call in calls]
    pipe = redis.pipeline(transaction=False)
    for script_keys, script_args in calls:
        pipe.evalsha(sha, len(script_keys), *script_keys, *script_args)
    return await pipe.execute(raise_on_error=False)


async def _evalsha_one(redis: aioredis.Redis, sha: str, call: _Call) -> Any:
    script_keys, script_args = call
    try:
        return await redis.evalsha(sha, len(script_keys), *script_keys, *script_args)
    except RedisError as exc:  # in its slot, as the pipeline's raise_on_error=False gives it
        return exc


def _script_call(command: QueuedCommand) -> _Call:
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
    ]
    script_args: list[str | int] = [
        command.trigger_id or "",
        command.request_id,
        command.model_dump_json(),
        "1" if command.action is Action.REBALANCE else "0",
        INFLIGHT_TTL_S,
        TRIGGER_TTL_S,
        *requested_event_fields(command),
        # One JSON object rather than 16 flat arguments: redis.asyncio packs each
        # argument in Python (redis-py#4176), and the script flattens it for HSET.
        json.dumps(queued_fields(dumped)),
        command.traceparent or "",  # the requested event's trace ("" for none)
    ]
    return script_keys, script_args


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
    return (new_id("evt"), EventType.REQUESTED.value, _COMPACT_JSON.encode(body))
