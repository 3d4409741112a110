"""Settling an unknown enqueue: one atomic step against the enqueue script, on both Redis kinds."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError

from relay.core.commands import Action, QueuedCommand, Requester
from relay.core.ids import new_id
from relay.store import keys
from relay.store.abandon import ABANDONED_TTL_S, Settled, Settlement, settle_many
from relay.store.queue import EnqueueResult, EnqueueStatus, enqueue_many
from tests.fixtures.chaos import ServerFactory


def _command(
    portfolio_id: str = "pf_1", *, trigger_id: str | None = None, action: Action = Action.REBALANCE
) -> QueuedCommand:
    return QueuedCommand(
        request_id=new_id("req"),
        action=action,
        portfolio_id=portfolio_id,
        requested_by=Requester(team_id="T1", user_id="U1"),
        trigger_id=trigger_id,
    )


async def _settle(redis: aioredis.Redis, command: QueuedCommand) -> Settled:
    (result,) = await settle_many(redis, [command])
    assert isinstance(result, Settled), result
    return result


async def _enqueue(redis: aioredis.Redis, command: QueuedCommand) -> EnqueueResult:
    (result,) = await enqueue_many(redis, [command])
    assert isinstance(result, EnqueueResult), result
    return result


async def test_late_script_after_abandon_does_nothing(any_redis: aioredis.Redis) -> None:
    """A copy of the enqueue arriving after the abandon step finds the tombstone: no entry,
    no record, no markers, no event."""
    command = _command(trigger_id="t-late")
    settled = await _settle(any_redis, command)
    assert settled == Settled(Settlement.ABANDONED, command.request_id)
    late = await _enqueue(any_redis, command)
    assert late == EnqueueResult(EnqueueStatus.ABANDONED, command.request_id)
    assert await any_redis.xlen(keys.COMMAND_STREAM) == 0
    assert await any_redis.xlen(keys.EVENTS) == 0
    assert not await any_redis.exists(keys.request(command.request_id))
    assert not await any_redis.exists(keys.portfolio_inflight("pf_1"))
    assert not await any_redis.exists(keys.portfolio_latest("pf_1"))
    assert not await any_redis.exists(keys.trigger_seen("t-late"))


async def test_abandon_after_queued_reports_queued(any_redis: aioredis.Redis) -> None:
    """When the write landed first, settling says queued and writes no tombstone."""
    command = _command(action=Action.PAUSE)
    assert (await _enqueue(any_redis, command)).status is EnqueueStatus.QUEUED
    settled = await _settle(any_redis, command)
    assert settled == Settled(Settlement.QUEUED, command.request_id)
    assert not await any_redis.exists(keys.abandoned(command.request_id))
    assert await any_redis.xlen(keys.COMMAND_STREAM) == 1


async def test_same_slack_command_queued_earlier_is_named(any_redis: aioredis.Redis) -> None:
    """A trigger id already queued under another request: settled as that request, and the
    unknown one can never be queued."""
    first, retry = _command(trigger_id="t-1"), _command(trigger_id="t-1")
    await _enqueue(any_redis, first)
    settled = await _settle(any_redis, retry)
    assert settled == Settled(Settlement.DUPLICATE, first.request_id)
    assert (await _enqueue(any_redis, retry)).status is EnqueueStatus.ABANDONED
    assert await any_redis.xlen(keys.COMMAND_STREAM) == 1


async def test_settling_again_gives_the_same_answer(any_redis: aioredis.Redis) -> None:
    """A settle step that got no answer can be sent again: abandoned stays abandoned."""
    lost, landed = _command("pf_lost"), _command("pf_landed")
    await _enqueue(any_redis, landed)
    first = await settle_many(any_redis, [lost, landed])
    again = await settle_many(any_redis, [lost, landed])
    assert first == again
    assert [getattr(r, "status", r) for r in again] == [Settlement.ABANDONED, Settlement.QUEUED]


async def test_tombstone_outlives_any_late_delivery(any_redis: aioredis.Redis) -> None:
    """The tombstone expires, but only long after TCP retransmission gives up (~16 min)."""
    command = _command()
    await _settle(any_redis, command)
    ttl = await any_redis.ttl(keys.abandoned(command.request_id))
    assert 3600 < ttl <= ABANDONED_TTL_S


async def test_resent_copy_of_an_accepted_request_adds_nothing(any_redis: aioredis.Redis) -> None:
    """The client resends a pipeline after a dropped connection: the second copy of an
    accepted request (even without a trigger id) answers queued and adds no second entry."""
    command = _command(action=Action.RESUME)
    first = await _enqueue(any_redis, command)
    again = await _enqueue(any_redis, command)
    assert first == again == EnqueueResult(EnqueueStatus.QUEUED, command.request_id)
    assert await any_redis.xlen(keys.COMMAND_STREAM) == 1


async def test_out_of_memory_neither_queues_nor_abandons(redis_servers: ServerFactory) -> None:
    """At maxmemory with noeviction both scripts are refused at their first write, so
    nothing half-happens: a queued request is still found, a lost one stays unsettled
    (to be retried), and its late copy does not run either."""
    server = await redis_servers()
    redis = aioredis.Redis.from_url(server.url)
    try:
        landed, lost = _command("pf_landed"), _command("pf_lost")
        await _enqueue(redis, landed)
        await redis.config_set("maxmemory-policy", "noeviction")
        await redis.config_set("maxmemory", "1")
        found, refused = await settle_many(redis, [landed, lost])
        assert found == Settled(Settlement.QUEUED, landed.request_id)
        assert isinstance(refused, OutOfMemoryError)
        (late,) = await enqueue_many(redis, [lost])
        assert isinstance(late, OutOfMemoryError)
        assert await redis.xlen(keys.COMMAND_STREAM) == 1
        assert not await redis.exists(keys.abandoned(lost.request_id))
    finally:
        await redis.aclose()
