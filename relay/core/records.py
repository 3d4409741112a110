"""The record the relay keeps of each accepted command (``keys.request``), as a Redis hash.

The hash is flat strings so Lua scripts can update single fields atomically; this
module is the one place that converts between it and the typed model, and names the
fields the worker keeps beside the modelled ones (``RequestRecord`` ignores them).
Values over 64 bytes are stored in chunks (relay/core/record_codec.py) so the hash
keeps Redis's compact listpack encoding with its default settings.
Reads and writes go through :class:`relay.store.requests.RequestStore`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from relay.core.commands import Action, Requester
from relay.core.record_codec import pack, unpack
from relay.store.connection import text_map

# The worker's own fields of the hash (``x_`` so they never meet a modelled one).
FIRST_POST_MS = "x_first_post_ms"  # when the executor first sent (or may have sent) the POST
POSTS = "x_posts"  # how many times it did
REFUSED = "x_refused"  # how many of those Glider provably never processed
DOUBT_MS = "x_doubt_ms"  # when the POST that may have reached Glider was about to leave
POST_FIELDS = (FIRST_POST_MS, POSTS, REFUSED, DOUBT_MS)
AWAITED = "x_awaited"  # set once rebalance.awaiting_user was announced
REPLY_USES = "x_reply_uses"  # response_url posts made (Slack allows 5)
TRACKED_MS = "x_tracked_ms"  # our clock when Glider accepted it: poll ages count from here


_DEFAULT_SOURCE = Requester.model_fields["source"].default
# json.dumps(separators=...) builds an encoder per call; this one is built once.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def requester_json(dumped: dict[str, Any]) -> str:
    """A requester field of the hash from its JSON dump: no spaces, the default source left
    out (``Requester`` puts it back)."""
    kept = {k: v for k, v in dumped.items() if not (k == "source" and v == _DEFAULT_SOURCE)}
    return _COMPACT_JSON.encode(kept)


class RequestState(StrEnum):
    QUEUED = "queued"  # on the command stream, not yet sent to Glider
    SUBMITTED = "submitted"  # Glider answered 202; the poller tracks the operation
    AWAITING_USER = "awaiting_user"  # Glider waits for an end-user action; still polled
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"  # Glider refused (401/403/404/400/cooldown 429); not retried
    PAUSED = "paused"
    RESUMED = "resumed"
    STUCK = "stuck"  # past the polling deadline without a terminal state

    @property
    def is_final(self) -> bool:
        return self not in _OPEN


_OPEN = frozenset({RequestState.QUEUED, RequestState.SUBMITTED, RequestState.AWAITING_USER})


class RequestRecord(BaseModel):
    """Everything known about one request; what ``GET /v1/operations/{id}`` returns."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    action: Action
    portfolio_id: str
    state: RequestState
    requested_by: Requester
    accepted_at: datetime
    updated_at: datetime
    response_url: str | None = None
    reason: str | None = None
    operation_id: str | None = None
    operation_state: str | None = None
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry_at: datetime | None = None
    traceparent: str | None = None  # the command's trace (relay/tracing.py); not shown by the API
    # What became of the requester's reply (relay/store/replies.py).
    reply_status: str | None = None  # "sent" or "not_sent"
    reply_kind: str | None = None
    reply_via: str | None = None  # "response_url" or "direct_message"
    reply_at: datetime | None = None
    reply_error: str | None = None
    reply_dead: str | None = None  # the dead letter's id (replayable)
    approved_by: Requester | None = None  # the second person of an approved rebalance

    def fields(self) -> dict[str, str]:
        """The stored fields by model name, whole values (absent ones left out): what a
        transition plan's ``set_fields`` / ``delete_fields`` name.

        The request id is not stored: it is in the key's name (``from_hash`` takes it).
        """
        out: dict[str, str] = {}
        dumped = self.model_dump(mode="json", exclude_none=True, exclude={"request_id"})
        for name, value in dumped.items():
            out[name] = requester_json(value) if isinstance(value, dict) else str(value)
        return out

    def to_hash(self) -> dict[str, str]:
        """The Redis hash form: :meth:`fields` with short names, long values chunked."""
        return pack(self.fields())

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any], request_id: str) -> RequestRecord:
        """Rebuild from ``HGETALL`` output of ``keys.request(request_id)`` (bytes or str keys;
        chunked or not; the previous version also kept the id in the hash)."""
        fields = {"request_id": request_id, **unpack(text_map(raw))}
        requested_by = Requester.model_validate_json(fields.pop("requested_by", "{}"))
        approved = fields.pop("approved_by", None)
        approved_by = Requester.model_validate_json(approved) if approved else None
        return cls.model_validate(
            {**fields, "requested_by": requested_by, "approved_by": approved_by}
        )
