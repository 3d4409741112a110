"""Request records in Redis: read one, the latest of a portfolio, a page, the worker's fields.

A record is a hash at ``keys.request(id)`` (:class:`relay.core.records.RequestRecord`
plus the worker's own ``x_*`` fields, named there); every
accepted request is also a member of the time-ordered index ``keys.REQUESTS``, and
``keys.portfolio_latest`` names the newest request of each portfolio. The record is
only ever written inside Lua steps, so each write stays atomic with what goes with
it: the enqueue script (with :func:`queued_fields`), the outcome step of
:mod:`relay.store.outcomes`, the POST bookkeeping there and the notifier's
response_url uses. This store is every other read and write of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from relay.core.ids import ulid
from relay.core.post_rules import PostLog
from relay.core.record_codec import pack
from relay.core.records import (
    DOUBT_MS,
    FIRST_POST_MS,
    POSTS,
    REFUSED,
    TRACKED_MS,
    RequestRecord,
    RequestState,
    requester_json,
)
from relay.store import keys
from relay.store.connection import text, text_map
from relay.store.paging import page_ids

# A final request's record is kept this long (the operations API's history), then
# expires; upkeep trims the request index to the same horizon.
RECORD_RETENTION_MS = 30 * 24 * 3600 * 1000
# How many ids one page walks at most when filtering, and how many it reads at a time.
SCAN_BUDGET = 2000
SCAN_CHUNK = 200


@dataclass(frozen=True, slots=True)
class Tracked:
    """A request record with the worker's own bookkeeping beside it."""

    record: RequestRecord
    tracked_ms: int | None  # when Glider accepted it, by our clock


def queued_fields(dumped: dict[str, Any]) -> dict[str, str]:
    """The queued request's record hash from ``QueuedCommand.model_dump(mode="json")``.

    What the enqueue script writes; equal to ``RequestRecord(..., state=QUEUED).to_hash()``
    (pinned by a test), built from the dump rather than by validating the model again.
    """
    requester = {name: v for name, v in dumped["requested_by"].items() if v is not None}
    fields = {
        "action": dumped["action"],
        "portfolio_id": dumped["portfolio_id"],
        "state": RequestState.QUEUED.value,
        "requested_by": requester_json(requester),
        "accepted_at": dumped["accepted_at"],
        "updated_at": dumped["accepted_at"],
    }
    for optional in ("response_url", "reason", "traceparent"):
        if dumped[optional] is not None:
            fields[optional] = dumped[optional]
    if dumped.get("approved_by") is not None:
        approver = {name: v for name, v in dumped["approved_by"].items() if v is not None}
        fields["approved_by"] = requester_json(approver)
    return pack(fields)


def _matches(
    record: RequestRecord,
    state: RequestState | None,
    portfolio: str | None,
    requester: str | None = None,
) -> bool:
    return (
        (state is None or record.state is state)
        and (portfolio is None or record.portfolio_id == portfolio)
        and (requester is None or record.requested_by.user_id == requester)
    )


class RequestStore:
    """Request records on one Redis client."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def get(self, request_id: str) -> RequestRecord | None:
        """The request record, or None when unknown (or expired)."""
        raw = await self.redis.hgetall(keys.request(request_id))
        return RequestRecord.from_hash(raw, request_id) if raw else None

    async def latest(self, portfolio_id: str) -> RequestRecord | None:
        """The most recent request accepted for ``portfolio_id``, if any."""
        request_id = await self.redis.get(keys.portfolio_latest(portfolio_id))
        if request_id is None:
            return None
        return await self.get(text(request_id))

    async def latest_many(self, portfolio_ids: list[str]) -> dict[str, RequestRecord]:
        """The latest request of each of ``portfolio_ids`` that has one, in two round trips."""
        if not portfolio_ids:
            return {}
        raw: list[Any] = await self.redis.mget([keys.portfolio_latest(p) for p in portfolio_ids])
        ids = [text(r) for r in raw if r is not None]
        return {record.portfolio_id: record for record in await self.get_many(ids)}

    async def get_many(self, ids: list[str]) -> list[RequestRecord]:
        """The records of ``ids`` in that order, in one round trip; unknown ones left out."""
        pipe = self.redis.pipeline(transaction=False)
        for request_id in ids:
            pipe.hgetall(keys.request(request_id))
        raw: list[Any] = await pipe.execute()
        return [
            RequestRecord.from_hash(fields, request_id)
            for request_id, fields in zip(ids, raw, strict=True)
            if fields
        ]

    async def page(
        self,
        *,
        state: RequestState | None = None,
        portfolio: str | None = None,
        requester: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
        budget: int = SCAN_BUDGET,
        chunk: int = SCAN_CHUNK,
    ) -> tuple[list[RequestRecord], str | None]:
        """Up to ``limit`` matching records after ``cursor``, newest first, and the next cursor.

        ``requester`` keeps the requests of that Slack user id only.

        Filters apply while walking the index, at most about ``budget`` ids per call (a rare
        filter never makes one call walk the whole history): a page may then hold fewer
        than ``limit`` records, and its cursor points past the last id walked.
        """
        found: list[RequestRecord] = []
        scanned = 0
        while len(found) < limit and scanned < budget:
            ids, more = await page_ids(self.redis, keys.REQUESTS, cursor=cursor, limit=chunk)
            scanned += len(ids)
            found += [
                r for r in await self.get_many(ids) if _matches(r, state, portfolio, requester)
            ]
            cursor = more
            if more is None:
                break
        if len(found) > limit:
            # The last chunk matched more than fit: go on right after the last one returned.
            found = found[:limit]
            cursor = found[-1].request_id
        return found, cursor

    async def post_log(self, request_id: str) -> PostLog | None:
        """The record of our POSTs, or None when the request is no longer queued."""
        state, first, posts, refused, doubt = await self.redis.hmget(
            keys.request(request_id), ["state", FIRST_POST_MS, POSTS, REFUSED, DOUBT_MS]
        )
        if state is None or text(state) != RequestState.QUEUED.value:
            return None
        return PostLog(
            first_ms=int(first) if first is not None else None,
            posts=int(posts or 0),
            refused=int(refused or 0),
            doubt_ms=int(doubt) if doubt is not None else None,
        )

    async def tracked(self, request_id: str) -> Tracked | None:
        """The record and the worker's fields, or None when the request is unknown."""
        raw = await self.redis.hgetall(keys.request(request_id))
        if not raw:
            return None
        fields = text_map(raw)
        tracked = fields.get(TRACKED_MS)
        return Tracked(
            RequestRecord.from_hash(fields, request_id), int(tracked) if tracked else None
        )

    async def forget_older_than(self, older_than_ms: int) -> int:
        """Drop request ids made before ``older_than_ms`` from the index (their records expired).

        Request ids are ULIDs, so everything below the ULID of that instant is older.
        """
        horizon = f"req_{ulid(older_than_ms, bytes(10))}"
        removed: int = await self.redis.zremrangebylex(keys.REQUESTS, "-", f"({horizon}")
        return removed
