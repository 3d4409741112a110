"""The timeline of one request: what happened to a command, in time order.

``GET /v1/operations/{requestId}/timeline`` and ``glider-relay operations show``
both call :func:`timeline`. It reads the request record (accepted, submitted,
finished, what the requester was told), the request's events on the events
stream (kept 7 days) and each event's webhook and alert deliveries. Reads are
bounded: events are looked for only around the request's lifetime
(``EVENT_SCAN`` entries at most), deliveries by their event's time.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict

from relay.core.clock import to_ms
from relay.core.events import Event
from relay.core.ids import ulid
from relay.core.records import RequestRecord
from relay.store import keys
from relay.store.connection import text
from relay.webhooks.deliveries import DeliveryStore
from relay.webhooks.models import Delivery

EVENT_SCAN = 5000
DELIVERIES_PER_EVENT = 200
_SKEW = timedelta(minutes=1)  # worker clocks and Redis's stream ids may disagree a little


class TimelineEntry(BaseModel):
    """One step: when, what kind (``request``, ``event``, ``delivery``, ``reply``), and words."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    kind: str
    summary: str
    id: str | None = None
    status: str | None = None
    nextAttemptAt: datetime | None = None


class Timeline(BaseModel):
    requestId: str
    entries: list[TimelineEntry]


def record_entries(record: RequestRecord) -> list[TimelineEntry]:
    """Steps the record itself tells: accepted, submitted, finished, the reply."""
    who = record.requested_by.user_name or record.requested_by.user_id or "someone"
    steps = [
        TimelineEntry(
            at=record.accepted_at,
            kind="request",
            summary=f"{record.action.value} of {record.portfolio_id} accepted from {who}",
            id=record.request_id,
            status="queued",
        )
    ]
    if record.submitted_at is not None:
        operation = record.operation_id or "an operation whose id is unknown"
        steps.append(
            TimelineEntry(
                at=record.submitted_at,
                kind="request",
                summary=f"submitted to Glider as {operation}",
                status="submitted",
            )
        )
    if record.state.is_final:
        error = f": {record.error_code} {record.error_message or ''}" if record.error_code else ""
        steps.append(
            TimelineEntry(
                at=record.finished_at or record.updated_at,
                kind="request",
                summary=f"{record.state.value}{error}".strip(),
                status=record.state.value,
            )
        )
    if record.reply_status is not None and record.reply_at is not None:
        steps.append(_reply_entry(record, record.reply_at))
    return steps


def _reply_entry(record: RequestRecord, at: datetime) -> TimelineEntry:
    kind = record.reply_kind or "reply"
    if record.reply_status == "sent":
        summary = f"requester told ({kind}) via {record.reply_via}"
        return TimelineEntry(at=at, kind="reply", summary=summary, status="sent")
    summary = f"requester NOT told ({kind}): {record.reply_error}; replay {record.reply_dead}"
    return TimelineEntry(at=at, kind="reply", summary=summary, id=record.reply_dead, status="dead")


def delivery_entry(delivery: Delivery) -> TimelineEntry:
    last = delivery.attempts[-1] if delivery.attempts else None
    at = last.at if last is not None else delivery.createdAt
    answer = ""
    if last is not None:
        answer = f", last answer {last.statusCode or last.error or '-'}"
    return TimelineEntry(
        at=at,
        kind="delivery",
        summary=f"{delivery.eventType} to {delivery.subscriptionId}: "
        f"{delivery.status.value} after {len(delivery.attempts)} attempt(s){answer}",
        id=delivery.id,
        status=delivery.status.value,
        nextAttemptAt=delivery.nextAttemptAt,
    )


async def request_events(redis: aioredis.Redis, record: RequestRecord) -> list[Event]:
    """The request's events still on the events stream, oldest first."""
    start = to_ms(record.accepted_at - _SKEW)
    end = to_ms(record.updated_at + _SKEW)
    raw: Any = await redis.xrange(keys.EVENTS, str(start), str(end), count=EVENT_SCAN)
    events = []
    for _entry_id, fields in raw:
        try:
            body = json.loads(text(fields.get(b"body", fields.get("body", b"{}"))))
        except ValueError:
            continue
        if isinstance(body, dict) and body.get("data", {}).get("requestId") == record.request_id:
            events.append(Event.from_stream(fields))
    return events


async def event_deliveries(redis: aioredis.Redis, event: Event) -> list[Delivery]:
    """The deliveries ``event`` made: their ids start with the event's time (fan-out)."""
    ms = to_ms(event.timestamp)
    low, high = ulid(ms, bytes(10)), ulid(ms, b"\xff" * 10)
    raw: Any = await redis.zrangebylex(
        keys.DELIVERIES, f"[dlv_{low}", f"[dlv_{high}", start=0, num=DELIVERIES_PER_EVENT
    )
    store = DeliveryStore(redis)
    found = [await store.get(text(did)) for did in raw]
    return [d for d in found if d is not None and d.eventId == event.id]


async def timeline(redis: aioredis.Redis, record: RequestRecord) -> Timeline:
    """Every step known of ``record``'s request, in time order."""
    entries = record_entries(record)
    for event in await request_events(redis, record):
        entries.append(
            TimelineEntry(at=event.timestamp, kind="event", summary=event.type.value, id=event.id)
        )
        entries += [delivery_entry(d) for d in await event_deliveries(redis, event)]
    # Events carry millisecond times, the record finer ones: compared to the millisecond, a
    # step and the event it raised in the same millisecond keep their order (step first).
    entries.sort(key=lambda entry: to_ms(entry.at))
    return Timeline(requestId=record.request_id, entries=entries)
