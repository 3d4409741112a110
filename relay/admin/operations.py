"""Admin routes for tracked commands and their Glider operations (docs/contract.md §6.7).

``GET /v1/operations?state=&portfolio=&limit=&cursor=`` lists request records
newest first; ``GET /v1/operations/{requestId}`` shows one. Both answer from what
the worker recorded. Filters are applied while walking the time-ordered index,
at most ``SCAN_BUDGET`` ids per call: a page may then hold fewer than ``limit``
items with a ``nextCursor`` to continue from (a rare filter never makes one call
walk the whole history).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from relay.admin import app as admin
from relay.admin.common import (
    ApiError,
    list_response,
    object_response,
    page_ids,
    parse_limit,
    query_enum,
)
from relay.admin.routing import Route
from relay.admin.schemas import ListQuery, Page
from relay.core.commands import PORTFOLIO_ID_PATTERN, PORTFOLIO_ID_RE
from relay.core.events import EventError, EventRequester
from relay.core.records import RequestRecord, RequestState
from relay.store import keys
from relay.store.queue import load_record

SCAN_BUDGET = 2000
_CHUNK = 200


class OperationView(BaseModel):
    """A request and its Glider operation as the admin API shows it (no response_url)."""

    model_config = ConfigDict(frozen=True)

    requestId: str
    action: str
    portfolioId: str
    state: RequestState
    requestedBy: EventRequester
    reason: str | None
    acceptedAt: datetime
    updatedAt: datetime
    operationId: str | None
    operationState: str | None
    submittedAt: datetime | None
    finishedAt: datetime | None
    error: EventError | None
    retryAt: datetime | None

    @classmethod
    def of(cls, record: RequestRecord) -> OperationView:
        error = None
        if record.error_code:
            error = EventError(code=record.error_code, message=record.error_message or "")
        return cls(
            requestId=record.request_id,
            action=record.action.value,
            portfolioId=record.portfolio_id,
            state=record.state,
            requestedBy=EventRequester.of(record.requested_by),
            reason=record.reason,
            acceptedAt=record.accepted_at,
            updatedAt=record.updated_at,
            operationId=record.operation_id,
            operationState=record.operation_state,
            submittedAt=record.submitted_at,
            finishedAt=record.finished_at,
            error=error,
            retryAt=record.retry_at,
        )


class OperationPage(Page[OperationView]):
    pass


class OperationQuery(ListQuery):
    """Query string of ``GET /v1/operations``."""

    state: RequestState | None = None
    portfolio: str | None = Field(default=None, pattern=PORTFOLIO_ID_PATTERN)


def query_filters(request: web.Request) -> tuple[RequestState | None, str | None]:
    """The state and portfolio filters of the query string (400 for a bad one)."""
    state = query_enum(request, "state", RequestState)
    portfolio = request.query.get("portfolio") or None
    if portfolio is not None and not PORTFOLIO_ID_RE.fullmatch(portfolio):
        raise ApiError(400, "bad_portfolio", "portfolio must be 1-64 letters, digits, _ or -")
    return state, portfolio


async def _records(redis: aioredis.Redis, ids: list[str]) -> list[RequestRecord]:
    pipe = redis.pipeline(transaction=False)
    for request_id in ids:
        pipe.hgetall(keys.request(request_id))
    raw: list[Any] = await pipe.execute()
    return [RequestRecord.from_hash(fields) for fields in raw if fields]


def _matches(record: RequestRecord, state: RequestState | None, portfolio: str | None) -> bool:
    return (state is None or record.state is state) and (
        portfolio is None or record.portfolio_id == portfolio
    )


async def page_records(
    redis: aioredis.Redis,
    *,
    state: RequestState | None,
    portfolio: str | None,
    cursor: str | None,
    limit: int,
    budget: int = SCAN_BUDGET,
    chunk: int = _CHUNK,
) -> tuple[list[RequestRecord], str | None]:
    """Up to ``limit`` matching records after ``cursor``, newest first, and the next cursor.

    Walks at most about ``budget`` ids; the cursor then points past the last one walked.
    """
    found: list[RequestRecord] = []
    scanned = 0
    while len(found) < limit and scanned < budget:
        ids, more = await page_ids(redis, keys.REQUESTS, cursor=cursor, limit=chunk)
        scanned += len(ids)
        found += [r for r in await _records(redis, ids) if _matches(r, state, portfolio)]
        cursor = more
        if more is None:
            break
    if len(found) > limit:
        # The last page matched more than fit: go on right after the last one returned.
        found = found[:limit]
        cursor = found[-1].request_id
    return found, cursor


async def list_operations(request: web.Request) -> web.Response:
    state, portfolio = query_filters(request)
    records, cursor = await page_records(
        request.app[admin.REDIS],
        state=state,
        portfolio=portfolio,
        cursor=request.query.get("cursor") or None,
        limit=parse_limit(request),
    )
    return list_response([OperationView.of(r) for r in records], cursor)


async def get_operation(request: web.Request) -> web.Response:
    request_id = request.match_info["request_id"]
    record = await load_record(request.app[admin.REDIS], request_id)
    if record is None:
        raise ApiError(404, "not_found", f"no request {request_id}")
    return object_response(OperationView.of(record))


ROUTES = (
    Route(
        "GET",
        "/operations",
        list_operations,
        "List tracked commands and their Glider operations, newest first",
        200,
        response=OperationPage,
        query=OperationQuery,
        errors=(400,),
    ),
    Route(
        "GET",
        "/operations/{request_id}",
        get_operation,
        "Show one tracked command by its request id",
        200,
        response=OperationView,
        errors=(404,),
    ),
)
