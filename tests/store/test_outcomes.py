"""Outcome step: record, event, reply, poll schedule, in-flight marker and ack, all or nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from relay.core import transitions
from relay.core.commands import Action, QueuedCommand, Requester
from relay.core.events import Event, EventType
from relay.core.ids import new_id
from relay.core.post_rules import PostLog
from relay.core.records import POST_FIELDS, RequestRecord, RequestState
from relay.glider import Operation
from relay.store import keys, outcomes
from relay.store.connection import text
from relay.store.pending import PendingEntry
from relay.store.queue import enqueue, ensure_group
from relay.store.requests import RequestStore
from tests.fixtures.worker import pending_rows, stream_entries

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


async def _queued(redis: aioredis.Redis, action: Action = Action.REBALANCE) -> PendingEntry:
    """Enqueue a command and take its stream entry as an executor would."""
    command = QueuedCommand(
        request_id=new_id("req"),
        action=action,
        portfolio_id="pf_1",
        requested_by=Requester(team_id="T1", user_id="U1", user_name="alice"),
        response_url="https://hooks.slack.test/r/1",
    )
    await enqueue(redis, command)
    await ensure_group(redis, keys.COMMAND_STREAM, keys.COMMANDS_GROUP)
    reply: Any = await redis.xreadgroup(
        keys.COMMANDS_GROUP, "w1", {keys.COMMAND_STREAM: ">"}, count=1
    )
    [[_, [(entry_id, _fields)]]] = reply
    return PendingEntry(
        keys.COMMAND_STREAM, keys.COMMANDS_GROUP, text(entry_id), {"request_id": command.request_id}
    )


async def _record(redis: aioredis.Redis, delivery: PendingEntry) -> RequestRecord:
    found = await RequestStore(redis).get(delivery.fields["request_id"])
    assert found is not None
    return found


async def _events(redis: aioredis.Redis) -> list[Event]:
    return [Event.from_stream(fields) for _, fields in await stream_entries(redis, keys.EVENTS)]


async def test_submission_is_recorded_scheduled_and_acked_together(
    any_redis: aioredis.Redis,
) -> None:
    """One step: record submitted, event appended, first poll due, stream entry acked."""
    delivery = await _queued(any_redis)
    before = await _record(any_redis, delivery)
    first_poll = NOW + timedelta(seconds=2)
    plan = transitions.submitted(before, NOW, "op-1", NOW, first_poll)
    result = await outcomes.apply(any_redis, plan, ack=delivery)
    assert result.applied
    assert result.previous_state is RequestState.QUEUED
    after = await _record(any_redis, delivery)
    assert after.state is RequestState.SUBMITTED
    assert after.operation_id == "op-1"
    assert [e.type for e in await _events(any_redis)] == [EventType.REQUESTED, EventType.SUBMITTED]
    due = await any_redis.zscore(keys.POLL_DUE, before.request_id)
    assert due == int(first_poll.timestamp() * 1000)
    assert await pending_rows(any_redis, keys.COMMAND_STREAM, keys.COMMANDS_GROUP) == []


async def test_a_second_outcome_for_the_same_request_only_acks(any_redis: aioredis.Redis) -> None:
    """A redelivered command's outcome step changes nothing once the first one applied."""
    delivery = await _queued(any_redis)
    before = await _record(any_redis, delivery)
    await outcomes.apply(any_redis, transitions.submitted(before, NOW, "op-1", NOW, NOW))
    again = transitions.rejected(before, NOW, "cooldown", "later")
    result = await outcomes.apply(any_redis, again, ack=delivery)
    assert not result.applied
    assert result.previous_state is RequestState.SUBMITTED
    assert (await _record(any_redis, delivery)).state is RequestState.SUBMITTED
    assert len(await _events(any_redis)) == 2
    assert await any_redis.xlen(keys.REPLIES) == 0
    assert await pending_rows(any_redis, keys.COMMAND_STREAM, keys.COMMANDS_GROUP) == []


async def test_final_outcome_unschedules_frees_portfolio_and_replies(
    any_redis: aioredis.Redis,
) -> None:
    """A terminal operation: poll removed, in-flight marker cleared, requester reply queued."""
    delivery = await _queued(any_redis)
    queued = await _record(any_redis, delivery)
    await outcomes.apply(any_redis, transitions.submitted(queued, NOW, "op-1", NOW, NOW))
    tracked = await _record(any_redis, delivery)
    assert await any_redis.get(keys.portfolio_inflight("pf_1")) is not None
    operation = Operation.model_validate(
        {"operationId": "op-1", "portfolioId": "pf_1", "state": "completed"}
    )
    await outcomes.apply(any_redis, transitions.finished(tracked, NOW, operation))
    assert (await _record(any_redis, delivery)).state is RequestState.COMPLETED
    assert await any_redis.zscore(keys.POLL_DUE, queued.request_id) is None
    assert await any_redis.get(keys.portfolio_inflight("pf_1")) is None
    [(_, reply)] = await stream_entries(any_redis, keys.REPLIES)
    assert reply == {"request_id": queued.request_id, "kind": "final"}


async def test_release_leaves_another_requests_marker_alone(any_redis: aioredis.Redis) -> None:
    """The in-flight marker is cleared only when it still names this request."""
    delivery = await _queued(any_redis)
    queued = await _record(any_redis, delivery)
    await any_redis.set(keys.portfolio_inflight("pf_1"), "req_other")
    await outcomes.apply(any_redis, transitions.failed(queued, NOW, "server_error", "502"))
    assert await any_redis.get(keys.portfolio_inflight("pf_1")) == b"req_other"


async def test_awaiting_user_is_announced_only_once(any_redis: aioredis.Redis) -> None:
    """Seeing awaiting_user again (even after running) adds no second event or reply."""
    delivery = await _queued(any_redis)
    queued = await _record(any_redis, delivery)
    await outcomes.apply(any_redis, transitions.submitted(queued, NOW, "op-1", NOW, NOW))
    for state in ("awaiting_user", "running", "awaiting_user"):
        current = await _record(any_redis, delivery)
        operation = Operation.model_validate(
            {"operationId": "op-1", "portfolioId": "pf_1", "state": state}
        )
        await outcomes.apply(any_redis, transitions.progressed(current, NOW, operation, NOW))
    types = [e.type for e in await _events(any_redis)]
    assert types.count(EventType.AWAITING_USER) == 1
    assert await any_redis.xlen(keys.REPLIES) == 1
    assert (await _record(any_redis, delivery)).state is RequestState.AWAITING_USER


async def test_reschedule_does_not_revive_a_finished_poll(any_redis: aioredis.Redis) -> None:
    """A late reschedule of an operation no longer tracked adds nothing to the due set."""
    delivery = await _queued(any_redis)
    queued = await _record(any_redis, delivery)
    await outcomes.apply(any_redis, transitions.submitted(queued, NOW, "op-1", NOW, NOW))
    tracked = await _record(any_redis, delivery)
    await any_redis.zrem(keys.POLL_DUE, queued.request_id)
    await outcomes.apply(any_redis, transitions.poll_later(tracked, NOW))
    assert await any_redis.zcard(keys.POLL_DUE) == 0


async def test_a_post_in_doubt_blocks_every_further_post(any_redis: aioredis.Redis) -> None:
    """Noting a POST puts it in doubt: no second POST may be noted (by any worker) until
    Glider proves it refused the first; the first POST time sticks throughout."""
    delivery = await _queued(any_redis)
    request_id = delivery.fields["request_id"]
    assert await outcomes.begin_post(any_redis, request_id, 1000) is True
    assert await outcomes.begin_post(any_redis, request_id, 1500) is False
    assert await RequestStore(any_redis).post_log(request_id) == PostLog(1000, 1, 0, 1000)
    await outcomes.post_refused(any_redis, request_id)
    assert await RequestStore(any_redis).post_log(request_id) == PostLog(1000, 1, 1, None)
    await outcomes.post_refused(any_redis, request_id)  # nothing in doubt: no effect
    assert await outcomes.begin_post(any_redis, request_id, 2000) is True
    assert await RequestStore(any_redis).post_log(request_id) == PostLog(1000, 2, 1, 2000)
    queued = await _record(any_redis, delivery)
    await outcomes.apply(any_redis, transitions.submitted(queued, NOW, "op-1", NOW, NOW))
    assert await outcomes.begin_post(any_redis, request_id, 3000) is None
    assert await RequestStore(any_redis).post_log(request_id) is None
    leftovers = await any_redis.hmget(keys.request(request_id), list(POST_FIELDS))
    assert leftovers == [None] * len(POST_FIELDS)  # dropped once submitted: records stay small
