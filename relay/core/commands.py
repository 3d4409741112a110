"""A Slack command once accepted: what goes on the command stream."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from relay.core.bounds import REASON_CHARS, USER_TEXT_CHARS, clip
from relay.core.clock import utc_now
from relay.core.trace import TRACEPARENT_CHARS

PORTFOLIO_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
PORTFOLIO_ID_RE = re.compile(PORTFOLIO_ID_PATTERN)


class Action(StrEnum):
    REBALANCE = "rebalance"
    PAUSE = "pause"
    RESUME = "resume"


class Requester(BaseModel):
    """Who asked, as the event payload's ``requestedBy`` shows it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    source: str = "slack"
    team_id: str | None = Field(default=None, alias="teamId")
    user_id: str | None = Field(default=None, alias="userId")
    user_name: str | None = Field(default=None, alias="userName")
    channel_id: str | None = Field(default=None, alias="channelId")

    @field_validator("team_id", "user_id", "user_name", "channel_id")
    @classmethod
    def _bounded(cls, value: str | None) -> str | None:
        # Slack's own values are short; a forged or odd payload's are cut, not stored whole.
        return None if value is None else clip(value, USER_TEXT_CHARS)


class QueuedCommand(BaseModel):
    """One entry of the command stream (``keys.COMMAND_STREAM``), JSON in its ``command`` field."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    action: Action
    portfolio_id: str = Field(pattern=PORTFOLIO_ID_PATTERN)
    reason: str | None = Field(default=None, max_length=REASON_CHARS)
    requested_by: Requester
    response_url: str | None = None
    # The enqueue's dedupe id: Slack's trigger_id, or for a request without one a digest of
    # its signature (bot.signature.replay_key), so a replayed request never queues twice.
    trigger_id: str | None = None
    accepted_at: datetime = Field(default_factory=utc_now)
    # The W3C trace of the Slack request (relay/tracing.py): the worker's spans, the
    # request record and every event and delivery of this command continue it.
    traceparent: str | None = Field(default=None, max_length=TRACEPARENT_CHARS)
