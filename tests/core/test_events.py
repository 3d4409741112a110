"""Event payloads exactly as docs/contract.md §5.2."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from relay.core.commands import Requester
from relay.core.events import Event, EventData, EventError, EventRequester, EventType

_REQUESTER = Requester(team_id="T1", user_id="U1", user_name="alice", channel_id="C1")


def _event(**data: object) -> Event:
    fields: dict[str, object] = {
        "requestId": "req_01J",
        "portfolioId": "pf_01JWZG3KH9P4N5QXJVNK7M3WTV",
        "operationId": "rebalance:pf_x",
        "state": "completed",
        "submittedAt": datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC),
        "finishedAt": datetime(2026, 11, 22, 12, 0, 3, 100_000, tzinfo=UTC),
        "requestedBy": EventRequester.of(_REQUESTER),
    } | data
    return Event(
        type=EventType.COMPLETED,
        timestamp=datetime(2026, 11, 22, 12, 0, 3, 120_000, tzinfo=UTC),
        data=EventData.model_validate(fields),
    )


def test_body_matches_spec_example() -> None:
    """The webhook body has exactly type, timestamp and data, with millisecond UTC times."""
    assert json.loads(_event().body()) == {
        "type": "rebalance.completed",
        "timestamp": "2026-11-22T12:00:03.120Z",
        "data": {
            "requestId": "req_01J",
            "portfolioId": "pf_01JWZG3KH9P4N5QXJVNK7M3WTV",
            "operationId": "rebalance:pf_x",
            "state": "completed",
            "submittedAt": "2026-11-22T12:00:00.000Z",
            "finishedAt": "2026-11-22T12:00:03.100Z",
            "requestedBy": {"source": "slack", "teamId": "T1", "userId": "U1", "userName": "alice"},
            "error": None,
        },
    }


def test_error_and_retry_time_appear_when_set() -> None:
    """A rejection carries error {code, message} and, for a cooldown, retryAt."""
    event = _event(
        state="rejected",
        error=EventError(code="cooldown", message="retry later"),
        retryAt=datetime(2026, 11, 22, 12, 5, tzinfo=UTC),
    )
    data = json.loads(event.body())["data"]
    assert data["error"] == {"code": "cooldown", "message": "retry later"}
    assert data["retryAt"] == "2026-11-22T12:05:00.000Z"


def test_stream_round_trip() -> None:
    """An event survives the events stream unchanged, id included."""
    event = _event()
    assert Event.from_stream(event.stream_fields()) == event
    encoded = {k.encode(): v.encode() for k, v in event.stream_fields().items()}
    assert Event.from_stream(encoded) == event
