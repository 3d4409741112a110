"""Webhook records as they cross a boundary: Redis hashes, the admin API, the CLI.

Wire names are camelCase (docs/contract.md §6); times are ISO 8601 UTC with
milliseconds on the wire and epoch milliseconds in Redis.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field, field_serializer

from relay.core.clock import from_ms, iso_ms
from relay.core.events import EventType


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its first attempt, or replayed
    FAILED = "failed"  # the last attempt failed; another is scheduled
    SUCCEEDED = "succeeded"
    DEAD = "dead"  # no attempt left (or its subscription went away): replayable
    SKIPPED = "skipped"  # made while its subscription was disabled: never queued, recoverable

    @property
    def is_final(self) -> bool:
        return self in (DeliveryStatus.SUCCEEDED, DeliveryStatus.DEAD)

    @property
    def is_replayable(self) -> bool:
        """Replay may queue it (once its subscription is enabled): final or skipped."""
        return self.is_final or self is DeliveryStatus.SKIPPED

    @property
    def is_recoverable(self) -> bool:
        """Queued again by "recover since": dead ones, and skipped ones once enabled."""
        return self in (DeliveryStatus.DEAD, DeliveryStatus.SKIPPED)


class TargetKind(StrEnum):
    WEBHOOK = "webhook"  # a subscriber's URL, signed per Standard Webhooks
    SLACK = "slack"  # the on-call Slack channel (chat.postMessage)
    PAGERDUTY = "pagerduty"  # PagerDuty Events v2


ALL_EVENTS = "*"


def _opt_int(raw: str | None) -> int | None:
    return int(raw) if raw not in (None, "") else None


class Subscription(BaseModel):
    """A subscriber endpoint. ``secret`` is shown on create and rotate only."""

    id: str
    url: str
    events: list[str]
    description: str | None = None
    enabled: bool = True
    createdAt: datetime
    updatedAt: datetime
    disabledReason: str | None = None
    secret: str | None = None

    @field_serializer("createdAt", "updatedAt")
    def _iso(self, value: datetime) -> str:
        return iso_ms(value)

    @classmethod
    def from_hash(cls, fields: Mapping[str, str], *, with_secret: bool = False) -> Subscription:
        return cls(
            id=fields["id"],
            url=fields["url"],
            events=json.loads(fields["events"]),
            description=fields.get("description") or None,
            enabled=fields.get("enabled") == "1",
            createdAt=from_ms(int(fields["createdAt"])),
            updatedAt=from_ms(int(fields.get("updatedAt") or fields["createdAt"])),
            disabledReason=fields.get("disabledReason") or None,
            secret=fields["secret"] if with_secret else None,
        )

    def public(self) -> dict[str, object]:
        """The API shape: ``secret`` only when it is being handed out."""
        data = self.model_dump(mode="json")
        if self.secret is None:
            data.pop("secret")
        return data


class Attempt(BaseModel):
    """One try at a delivery: when, the answer (or error), how long, the start of the body."""

    at: datetime
    statusCode: int | None = None
    latencyMs: int
    error: str | None = None
    responseBody: str | None = None

    @field_serializer("at")
    def _iso(self, value: datetime) -> str:
        return iso_ms(value)


class Delivery(BaseModel):
    """One event for one subscription (docs/contract.md §6.6), with every attempt made."""

    id: str
    subscriptionId: str
    eventId: str
    eventType: str
    webhookId: str
    status: DeliveryStatus
    createdAt: datetime
    nextAttemptAt: datetime | None = None
    attempts: list[Attempt] = Field(default_factory=list)

    @field_serializer("createdAt")
    def _iso(self, value: datetime) -> str:
        return iso_ms(value)

    @field_serializer("nextAttemptAt")
    def _iso_opt(self, value: datetime | None) -> str | None:
        return iso_ms(value) if value is not None else None

    @classmethod
    def from_hash(cls, fields: Mapping[str, str]) -> Delivery:
        count = int(fields.get("n") or 0)
        attempts = [
            Attempt.model_validate_json(fields[f"a{i}"])
            for i in range(1, count + 1)
            if f"a{i}" in fields
        ]
        next_at = _opt_int(fields.get("nextAttemptAt"))
        return cls(
            id=fields["id"],
            subscriptionId=fields["subscriptionId"],
            eventId=fields["eventId"],
            eventType=fields["eventType"],
            webhookId=fields["webhookId"],
            status=DeliveryStatus(fields["status"]),
            createdAt=from_ms(int(fields["createdAt"])),
            nextAttemptAt=from_ms(next_at) if next_at is not None else None,
            attempts=attempts,
        )


EVENT_TYPES: frozenset[str] = frozenset(t.value for t in EventType)
