"""Producer side of the command queue: atomic, idempotent on trigger id, one rebalance in flight."""

from __future__ import annotations

import redis.asyncio as aioredis

from relay import keys
from relay.commands import Action, QueuedCommand, Requester
from relay.events import Event, EventType
from relay.ids import new_id
from relay.queue import EnqueueStatus, enqueue, latest_record, load_record
from relay.records import RequestState
from tests.fixtures.redis import stream_entries


def _command(
    action: Action = Action.REBALANCE, *, trigger: str | None = "trig-1", portfolio: str = "pf_1"
) -> QueuedCommand:
    return QueuedCommand(
        request_id=new_id("req"),
        action=action,
        portfolio_id=portfolio,
        requested_by=Requester(team_id="T1", user_id="U1", user_name="alice", channel_id="C1"),
        response_url="https://hooks.slack.test/r/1",
        trigger_id=trigger,
    )


async def test_enqueue_writes_stream_entry_and_record(any_redis: aioredis.Redis) -> None:
    """An accepted command is one stream entry plus a queued request record."""
    command = _command()
    result = await enqueue(any_redis, command)
    assert result.status is EnqueueStatus.QUEUED
    assert result.request_id == command.request_id
    [entry] = await stream_entries(any_redis, keys.COMMANDS)
    assert QueuedCommand.model_validate_json(entry["command"]) == command
    record = await load_record(any_redis, command.request_id)
    assert record is not None
    assert record.state is RequestState.QUEUED
    assert record.requested_by.user_name == "alice"
    assert (await latest_record(any_redis, "pf_1")) == record
    [event_fields] = await stream_entries(any_redis, keys.EVENTS)
    event = Event.from_stream(event_fields)
    assert event.type is EventType.REQUESTED
    assert event.data.requestId == command.request_id
    assert event.data.requestedBy.userName == "alice"


async def test_same_trigger_id_queues_once(any_redis: aioredis.Redis) -> None:
    """A retried Slack delivery (same trigger id) returns the first request, queues nothing."""
    first = await enqueue(any_redis, _command(Action.PAUSE))
    again = await enqueue(any_redis, _command(Action.PAUSE))
    assert again.status is EnqueueStatus.DUPLICATE
    assert again.request_id == first.request_id
    assert await any_redis.xlen(keys.COMMANDS) == 1


async def test_second_rebalance_while_in_flight_is_not_queued(any_redis: aioredis.Redis) -> None:
    """A rebalance for a portfolio with one in flight answers with the in-flight request."""
    first = await enqueue(any_redis, _command(trigger="a"))
    second = await enqueue(any_redis, _command(trigger="b"))
    assert second.status is EnqueueStatus.INFLIGHT
    assert second.request_id == first.request_id
    other = await enqueue(any_redis, _command(trigger="c", portfolio="pf_2"))
    assert other.status is EnqueueStatus.QUEUED
    pause = await enqueue(any_redis, _command(Action.PAUSE, trigger="d"))
    assert pause.status is EnqueueStatus.QUEUED
    assert await any_redis.xlen(keys.COMMANDS) == 3
    assert await any_redis.xlen(keys.EVENTS) == 2  # pause has no requested event
