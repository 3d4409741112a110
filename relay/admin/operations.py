"""Admin routes for tracked commands and their Glider operations (docs/contract.md §6.7).

``GET /v1/operations?state=&portfolio=&limit=&cursor=`` lists request records
newest first; ``GET /v1/operations/{requestId}`` shows one. Both answer from what
the worker recorded, through :class:`relay.store.requests.RequestStore`, whose
filtered pages walk a bounded number of ids: a page may then hold fewer than
``limit`` items with a ``nextCursor`` to continue from.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from relay.admin import app as admin
from relay.admin.common import (
    ApiError,
    list_response,
    object_response,
    parse_cursor,
    parse_limit,
    query_enum,
)
from relay.admin.routing import Route
from relay.admin.schemas import ListQuery, Page
from relay.admin.timeline import Timeline, timeline
from relay.core.commands import PORTFOLIO_ID_PATTERN, PORTFOLIO_ID_RE
from relay.core.events import EventError, EventRequester
from relay.core.records import RequestRecord, RequestState
from relay.store.requests import RequestStore


class ReplyView(BaseModel):
    """Whether the requester was told: ``sent`` (``via``) or ``not_sent`` (``error``, and the
    ``deadLetterId`` that ``POST /v1/dead-letters/{id}/replay`` sends again)."""

    model_config = ConfigDict(frozen=True)

    status: str
    kind: str | None
    via: str | None
    at: datetime | None
    error: str | None
    deadLetterId: str | None

    @classmethod
    def of(cls, record: RequestRecord) -> ReplyView | None:
        if record.reply_status is None:
            return None
        return cls(
            status=record.reply_status,
            kind=record.reply_kind,
            via=record.reply_via,
            at=record.reply_at,
            error=record.reply_error,
            deadLetterId=record.reply_dead,
        )


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
    reply: ReplyView | None = Field(
        default=None, description="what the requester was told; null while nothing was sent yet"
    )

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
            reply=ReplyView.of(record),
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


async def list_operations(request: web.Request) -> web.Response:
    state, portfolio = query_filters(request)
    records, cursor = await RequestStore(request.app[admin.REDIS]).page(
        state=state,
        portfolio=portfolio,
        cursor=parse_cursor(request, "req"),
        limit=parse_limit(request),
    )
    return list_response([OperationView.of(r) for r in records], cursor)


async def get_operation(request: web.Request) -> web.Response:
    request_id = request.match_info["request_id"]
    record = await RequestStore(request.app[admin.REDIS]).get(request_id)
    if record is None:
        raise ApiError(404, "not_found", f"no request {request_id}")
    return object_response(OperationView.of(record))


async def get_timeline(request: web.Request) -> web.Response:
    request_id = request.match_info["request_id"]
    record = await RequestStore(request.app[admin.REDIS]).get(request_id)
    if record is None:
        raise ApiError(404, "not_found", f"no request {request_id}")
    return object_response(await timeline(request.app[admin.REDIS], record))


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
    Route(
        "GET",
        "/operations/{request_id}/timeline",
        get_timeline,
        "What happened to one command: its steps, events, deliveries and reply, in time order",
        200,
        response=Timeline,
        errors=(404,),
    ),
)
