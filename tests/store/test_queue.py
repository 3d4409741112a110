"""Producer side of the command queue: atomic, idempotent on trigger id, one rebalance in flight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from relay.core.commands import Action, QueuedCommand, Requester
from relay.core.events import Event, EventData, EventRequester, EventType
from relay.core.ids import new_id
from relay.core.records import RequestRecord, RequestState
from relay.store import keys
from relay.store.queue import (
    EnqueueStatus,
    enqueue,
    requested_event_fields,
)
from relay.store.requests import RequestStore, queued_fields
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


def _queued_record(command: QueuedCommand) -> RequestRecord:
    return RequestRecord(
        request_id=command.request_id,
        action=command.action,
        portfolio_id=command.portfolio_id,
        state=RequestState.QUEUED,
        requested_by=command.requested_by,
        accepted_at=command.accepted_at,
        updated_at=command.accepted_at,
        response_url=command.response_url,
        reason=command.reason,
        traceparent=command.traceparent,
    )


async def test_enqueue_writes_stream_entry_and_record(any_redis: aioredis.Redis) -> None:
    """An accepted command is one stream entry plus a queued request record."""
    command = _command()
    result = await enqueue(any_redis, command)
    assert result.status is EnqueueStatus.QUEUED
    assert result.request_id == command.request_id
    [entry] = await stream_entries(any_redis, keys.COMMAND_STREAM)
    assert QueuedCommand.model_validate_json(entry["command"]) == command
    record = await RequestStore(any_redis).get(command.request_id)
    assert record == _queued_record(command)
    assert record.requested_by.user_name == "alice"
    assert (await RequestStore(any_redis).latest("pf_1")) == record
    [event_fields] = await stream_entries(any_redis, keys.EVENTS)
    event = Event.from_stream(event_fields)
    assert event.type is EventType.REQUESTED
    assert event.data.requestId == command.request_id
    assert event.data.requestedBy.userName == "alice"


async def test_record_text_survives_the_script_unchanged(any_redis: aioredis.Redis) -> None:
    """A pause reason and a requester name outside ASCII are stored exactly as given."""
    command = _command(Action.PAUSE).model_copy(
        update={
            "reason": 'maintenance "Q3" \\ <!channel> \u00e9\U0001f600',
            "requested_by": Requester(team_id="T1", user_id="U1", user_name="Zo\u00eb \u5f20"),
        }
    )
    await enqueue(any_redis, command)
    assert await RequestStore(any_redis).get(command.request_id) == _queued_record(command)


async def test_same_trigger_id_queues_once(any_redis: aioredis.Redis) -> None:
    """A retried Slack delivery (same trigger id) returns the first request, queues nothing."""
    first = await enqueue(any_redis, _command(Action.PAUSE))
    again = await enqueue(any_redis, _command(Action.PAUSE))
    assert again.status is EnqueueStatus.DUPLICATE
    assert again.request_id == first.request_id
    assert await any_redis.xlen(keys.COMMAND_STREAM) == 1


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
    assert await any_redis.xlen(keys.COMMAND_STREAM) == 3
    assert await any_redis.xlen(keys.EVENTS) == 2  # pause has no requested event


_text = st.none() | st.text(max_size=20)
_commands = st.builds(
    QueuedCommand,
    request_id=st.just("req_01JWZ3Q4X7N2M8P0R5T6V9YB1C"),
    action=st.sampled_from(Action),
    portfolio_id=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    reason=st.none() | st.text(max_size=500),
    requested_by=st.builds(
        Requester, team_id=_text, user_id=_text, user_name=_text, channel_id=_text
    ),
    response_url=_text,
    trigger_id=_text,
    traceparent=st.none() | st.just("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    accepted_at=st.datetimes(
        min_value=datetime(2000, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))]),
    ),
)


@given(_commands)
def test_queued_fields_are_the_request_records_hash(command: QueuedCommand) -> None:
    """The enqueue script writes exactly RequestRecord's hash for a queued command."""
    expected = _queued_record(command).to_hash()
    assert queued_fields(command.model_dump(mode="json")) == expected


@given(_commands.filter(lambda c: c.action is Action.REBALANCE))
def test_requested_event_is_the_event_models_body(command: QueuedCommand) -> None:
    """The rebalance.requested entry is byte for byte what the Event model writes."""
    event_id, event_type, body = requested_event_fields(command)
    event = Event(
        id=event_id,
        type=EventType.REQUESTED,
        timestamp=command.accepted_at,
        data=EventData(
            requestId=command.request_id,
            portfolioId=command.portfolio_id,
            state="requested",
            requestedBy=EventRequester.of(command.requested_by),
        ),
    )
    assert event.stream_fields() == {"id": event_id, "type": event_type, "body": body}


def test_pause_and_resume_have_no_requested_event() -> None:
    """Only a rebalance emits rebalance.requested on enqueue."""
    for action in (Action.PAUSE, Action.RESUME):
        assert requested_event_fields(_command(action)) == ("", "", "")
