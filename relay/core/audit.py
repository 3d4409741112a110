"""Audit entries (docs/contract.md §8 Audit): who did what, appended in the step that did it.

An entry is built here, in Python, as one bounded JSON text; the Lua step that
makes the change appends that text to the audit stream (``keys.AUDIT``) in the
same atomic call, so an entry exists exactly when its change happened. Reads go
through :class:`relay.store.audit.AuditStore`.

Nothing here does I/O. Every text field is cut to a documented length and is
expected to be redacted by the caller (no secret ever reaches an entry).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from relay.core.clock import utc_now
from relay.core.ids import new_id

DETAIL_MAX = 300
NAME_MAX = 80


class AuditAction(StrEnum):
    """Every action the log records (dotted: subject, then what happened to it)."""

    COMMAND_RECEIVED = "command.received"
    COMMAND_REFUSED = "command.refused"
    COMMAND_QUEUED = "command.queued"
    REBALANCE_PREVIEWED = "rebalance.previewed"
    REBALANCE_CONFIRMED = "rebalance.confirmed"
    REBALANCE_CANCELLED = "rebalance.cancelled"
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_APPROVED = "approval.approved"
    APPROVAL_REJECTED = "approval.rejected"
    APPROVAL_EXPIRED = "approval.expired"
    OUTCOME_RECORDED = "outcome.recorded"
    ONCALL_ACKNOWLEDGED = "oncall.acknowledged"
    ONCALL_RETRIED = "oncall.retried"
    ONCALL_PAUSED = "oncall.paused"
    SUBSCRIPTION_CREATED = "subscription.created"
    SUBSCRIPTION_CHANGED = "subscription.changed"
    SUBSCRIPTION_DELETED = "subscription.deleted"
    SUBSCRIPTION_SECRET_ROTATED = "subscription.secret_rotated"  # noqa: S105 - an action name
    SUBSCRIPTION_TESTED = "subscription.tested"
    DELIVERY_REPLAYED = "delivery.replayed"
    DELIVERIES_RECOVERED = "deliveries.recovered"
    DEAD_LETTER_REPLAYED = "dead_letter.replayed"
    CONSOLE_SIGNED_IN = "console.signed_in"
    CONSOLE_SIGN_IN_FAILED = "console.sign_in_failed"


def _cut(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


class AuditActor(BaseModel):
    """Who acted: a Slack user, the admin API, the console, or the relay itself."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    source: Literal["slack", "admin", "console", "relay"]
    team_id: str | None = Field(default=None, alias="teamId", max_length=NAME_MAX)
    user_id: str | None = Field(default=None, alias="userId", max_length=NAME_MAX)
    user_name: str | None = Field(default=None, alias="userName", max_length=NAME_MAX)

    @classmethod
    def slack(cls, team_id: str | None, user_id: str | None, user_name: str | None) -> AuditActor:
        return cls(
            source="slack",
            team_id=_cut(team_id, NAME_MAX),
            user_id=_cut(user_id, NAME_MAX),
            user_name=_cut(user_name, NAME_MAX),
        )


ADMIN = AuditActor(source="admin")
CONSOLE = AuditActor(source="console")
RELAY = AuditActor(source="relay")


class AuditEntry(BaseModel):
    """One line of the audit log, as ``GET /v1/audit`` shows it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    id: str
    at: datetime
    actor: AuditActor
    action: AuditAction
    portfolio_id: str | None = Field(default=None, alias="portfolioId", max_length=64)
    request_id: str | None = Field(default=None, alias="requestId", max_length=64)
    subscription_id: str | None = Field(default=None, alias="subscriptionId", max_length=64)
    detail: str | None = Field(default=None, max_length=DETAIL_MAX)

    def to_json(self) -> str:
        """The stored form (and the API's): camelCase, ISO times, no nulls dropped."""
        return self.model_dump_json(by_alias=True)


def new_entry(
    action: AuditAction,
    actor: AuditActor,
    *,
    portfolio_id: str | None = None,
    request_id: str | None = None,
    subscription_id: str | None = None,
    detail: str | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """A fresh entry (``aud_`` id, now); ``detail`` is cut to :data:`DETAIL_MAX`."""
    return AuditEntry(
        id=new_id("aud"),
        at=at or utc_now(),
        actor=actor,
        action=action,
        portfolio_id=portfolio_id,
        request_id=request_id,
        subscription_id=subscription_id,
        detail=_cut(detail, DETAIL_MAX),
    )
