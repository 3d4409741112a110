"""What a transition of a request produces: a :class:`Plan` for one atomic Redis step.

Built by the pure rules of :mod:`relay.core.transitions`, carried out by
:func:`relay.store.outcomes.apply`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from relay.core.events import Event
from relay.core.records import RequestState

QUEUED = (RequestState.QUEUED,)
TRACKED = (RequestState.SUBMITTED, RequestState.AWAITING_USER)
STUCK_CODE = "stuck"
VANISHED_CODE = "operation_not_found"


class ReplyKind(StrEnum):
    """What the requester is told: an update while it runs, or the final outcome."""

    AWAITING_USER = "awaiting_user"
    FINAL = "final"


class PollChange(BaseModel):
    """``schedule``: add to the due set; ``reschedule``: move only if still there; ``remove``."""

    op: Literal["schedule", "reschedule", "remove"]
    at_ms: int = 0


class Plan(BaseModel):
    """One transition of one request, ready to be applied atomically."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    portfolio_id: str
    from_states: tuple[RequestState, ...]
    set_fields: dict[str, str] = {}
    delete_fields: tuple[str, ...] = ()
    event: Event | None = None
    once: str | None = None  # announce (event + reply) only the first time this flag is set
    reply: ReplyKind | None = None
    poll: PollChange | None = None
    release: bool = False  # clear the portfolio's in-flight marker if it names this request
