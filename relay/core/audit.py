"""Audit entries (docs/contract.md §6.9): who did what, appended in the step that did it.

An entry is built here, in Python, as one bounded JSON text; the Lua step that
makes the change appends that text to the audit stream (``keys.AUDIT``) in the
same atomic call, so an entry exists exactly when its change happened. Reads go
through :class:`relay.store.audit.AuditStore`.

Nothing here does I/O. Every text field is redacted (:mod:`relay.core.redact`) and cut
to a documented length (:mod:`relay.core.bounds`) as the entry is built, so no secret and
no unbounded text reaches the log whoever builds an entry.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from relay.core.bounds import clip
from relay.core.clock import utc_now
from relay.core.ids import new_id
from relay.core.redact import redact

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
    CONSOLE_SIGNED_OUT = "console.signed_out"
    PORTAL_LINK_ISSUED = "portal_link.issued"
    PORTAL_LINKS_REVOKED = "portal_links.revoked"


def _cut(text: str | None, limit: int) -> str | None:
    """Redacted, then cut to ``limit`` (redaction first: a cut must not hide half a secret)."""
    if text is None:
        return None
    return clip(redact(text), limit)


class AuditActor(BaseModel):
    """Who acted: a Slack user, the admin API, the console, a partner portal, or the relay."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    source: Literal["slack", "admin", "console", "portal", "relay"]
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

    @model_serializer(mode="wrap")
    def _contract_form(self, handler: Any) -> dict[str, str | None]:
        # The contract's forms: a Slack actor names all three (null when Slack sent none);
        # any other is {"source": "admin"}, not a row of nulls beside it.
        dumped: dict[str, str | None] = handler(self)
        if self.source == "slack":
            return dumped
        return {name: value for name, value in dumped.items() if value is not None}


ADMIN = AuditActor(source="admin")
CONSOLE = AuditActor(source="console")
PORTAL = AuditActor(source="portal")  # a partner, through a portal link
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
        """The stored form (and the API's): camelCase, ISO times; the entry's own fields are
        all present (null where they do not apply), the actor's only when set."""
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
        # Ids are ours or validated, but an admin's filter text can be anything: redacted too.
        portfolio_id=_redacted(portfolio_id),
        request_id=_redacted(request_id),
        subscription_id=_redacted(subscription_id),
        detail=_cut(detail, DETAIL_MAX),
    )


def _redacted(value: str | None) -> str | None:
    return None if value is None else redact(value)
