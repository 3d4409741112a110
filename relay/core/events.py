"""Outcome events (docs/contract.md §5): the models, and their place on the events stream.

The webhook body is exactly ``{"type", "timestamp", "data"}``; the event id travels
beside it on the stream (it seeds each subscription's ``webhook-id``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from relay.core.bounds import ERROR_CODE_CHARS, ERROR_TEXT_CHARS, clip
from relay.core.clock import iso_ms, utc_now_ms
from relay.core.commands import Requester
from relay.core.ids import new_id
from relay.core.redact import redact
from relay.store.connection import text_map


class EventType(StrEnum):
    REQUESTED = "rebalance.requested"
    SUBMITTED = "rebalance.submitted"
    AWAITING_USER = "rebalance.awaiting_user"
    COMPLETED = "rebalance.completed"
    FAILED = "rebalance.failed"
    CANCELLED = "rebalance.cancelled"
    REJECTED = "rebalance.rejected"
    APPROVAL_REQUESTED = "rebalance.approval_requested"
    APPROVED = "rebalance.approved"
    DECLINED = "rebalance.declined"
    PAUSED = "portfolio.paused"
    RESUMED = "portfolio.resumed"


class EventError(BaseModel):
    """``error`` of an outcome: a stable code and the reason, redacted and bounded.

    The body of every delivery of the event holds this text, so its length is
    capped here (``ERROR_TEXT_CHARS``) whatever produced it.
    """

    code: str
    message: str

    @field_validator("code")
    @classmethod
    def _short_code(cls, value: str) -> str:
        return clip(redact(value), ERROR_CODE_CHARS)

    @field_validator("message")
    @classmethod
    def _bounded_message(cls, value: str) -> str:
        return clip(redact(value), ERROR_TEXT_CHARS)


class EventRequester(BaseModel):
    """``requestedBy`` in the payload: source, teamId, userId, userName."""

    source: str = "slack"
    teamId: str | None = None
    userId: str | None = None
    userName: str | None = None

    @classmethod
    def of(cls, requester: Requester) -> EventRequester:
        return cls(
            source=requester.source,
            teamId=requester.team_id,
            userId=requester.user_id,
            userName=requester.user_name,
        )


class EventData(BaseModel):
    """``data`` of the payload; field names are the wire's (docs/contract.md §5.2)."""

    model_config = ConfigDict(populate_by_name=True)

    requestId: str
    portfolioId: str
    operationId: str | None = None
    state: str
    submittedAt: datetime | None = None
    finishedAt: datetime | None = None
    requestedBy: EventRequester
    error: EventError | None = None
    retryAt: datetime | None = Field(default=None, exclude_if=lambda v: v is None)
    # On the approval events only (docs/contract.md §8), shaped like requestedBy.
    approvedBy: EventRequester | None = Field(default=None, exclude_if=lambda v: v is None)
    declinedBy: EventRequester | None = Field(default=None, exclude_if=lambda v: v is None)

    @field_serializer("submittedAt", "finishedAt", "retryAt")
    def _ms(self, value: datetime | None) -> str | None:
        return iso_ms(value) if value is not None else None


class Event(BaseModel):
    """One outcome. ``body()`` is the exact webhook payload."""

    id: str = Field(default_factory=lambda: new_id("evt"))
    type: EventType
    timestamp: datetime = Field(default_factory=utc_now_ms)
    data: EventData

    @field_serializer("timestamp")
    def _ms(self, value: datetime) -> str:
        return iso_ms(value)

    def body(self) -> bytes:
        """The webhook body: compact JSON of type, timestamp and data."""
        payload = self.model_dump(mode="json", include={"type", "timestamp", "data"})
        return json.dumps(payload, separators=(",", ":")).encode()

    def stream_fields(self) -> dict[str, str]:
        """Fields of the events-stream entry (``keys.EVENTS``)."""
        return {"id": self.id, "type": self.type.value, "body": self.body().decode()}

    @classmethod
    def from_stream(cls, fields: Mapping[Any, Any]) -> Event:
        decoded = text_map(fields)
        payload: dict[str, Any] = json.loads(decoded["body"])
        return cls.model_validate({"id": decoded["id"], **payload})


TEST_EVENT_TYPE: Literal["relay.test"] = "relay.test"


class RelayTestData(BaseModel):
    """``data`` of a ``relay.test`` event: which subscription asked, and a note saying so."""

    subscriptionId: str
    message: str = "A test event sent from glider-relay; no portfolio was touched."


class RelayTestEvent(BaseModel):
    """``relay.test``: sent to one subscription on request (docs/contract.md §10), signed and
    delivered like any other event; its body has the same ``{"type", "timestamp", "data"}``."""

    id: str = Field(default_factory=lambda: new_id("evt"))
    type: Literal["relay.test"] = TEST_EVENT_TYPE
    timestamp: datetime = Field(default_factory=utc_now_ms)
    data: RelayTestData

    @field_serializer("timestamp")
    def _ms(self, value: datetime) -> str:
        return iso_ms(value)

    def body(self) -> bytes:
        """The webhook body: compact JSON of type, timestamp and data."""
        payload = self.model_dump(mode="json", include={"type", "timestamp", "data"})
        return json.dumps(payload, separators=(",", ":")).encode()
