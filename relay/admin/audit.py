"""Admin route for the audit log (docs/contract.md §6.9): read-only, newest first.

``GET /v1/audit?portfolio=&user=&action=&since=&until=&limit=&cursor=``. Only GET is
routed: no route edits or deletes an entry, so PUT, PATCH or DELETE on it is a 405
(in the JSON error shape). Filters are walked within a budget
(:mod:`relay.store.audit`): a page may hold fewer than ``limit`` entries and still a
``nextCursor``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aiohttp import web
from pydantic import AwareDatetime, Field, JsonValue

from relay.admin import app as admin
from relay.admin.common import ApiError, list_response, parse_limit
from relay.admin.routing import Route
from relay.admin.schemas import ListQuery, Page
from relay.core.audit import NAME_MAX, AuditAction, AuditEntry
from relay.core.commands import PORTFOLIO_ID_PATTERN, PORTFOLIO_ID_RE
from relay.store.audit import CURSOR_RE, AuditFilter, AuditStore, known_subjects

_ACTIONS = frozenset(action.value for action in AuditAction) | known_subjects()
_ACTION_VALUES: list[JsonValue] = [*sorted(_ACTIONS)]


class AuditQuery(ListQuery):
    """Query string of ``GET /v1/audit``."""

    portfolio: str | None = Field(default=None, pattern=PORTFOLIO_ID_PATTERN)
    user: str | None = Field(
        default=None, min_length=1, max_length=NAME_MAX, description="Slack user id or name"
    )
    action: str | None = Field(
        default=None,
        description="an action (command.refused) or its subject alone (subscription)",
        json_schema_extra={"enum": _ACTION_VALUES},
    )
    since: AwareDatetime | None = Field(default=None, description="entries at or after")
    until: AwareDatetime | None = Field(default=None, description="entries at or before")


class AuditPage(Page[AuditEntry]):
    pass


def _time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(
            400, f"bad_{name}", f"{name} must be an ISO 8601 time, e.g. 2026-11-22T12:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _filter(request: web.Request) -> AuditFilter:
    query = request.query
    portfolio = query.get("portfolio") or None
    if portfolio is not None and not PORTFOLIO_ID_RE.fullmatch(portfolio):
        raise ApiError(400, "bad_portfolio", "portfolio must be 1-64 letters, digits, _ or -")
    user = query.get("user") or None
    if user is not None and len(user) > NAME_MAX:
        raise ApiError(400, "bad_user", f"user must be at most {NAME_MAX} characters")
    action = query.get("action") or None
    if action is not None and action not in _ACTIONS:
        raise ApiError(400, "bad_action", f"action must be one of {', '.join(sorted(_ACTIONS))}")
    since, until = _time(request, "since"), _time(request, "until")
    if since is not None and until is not None and since > until:
        raise ApiError(400, "bad_until", "until is before since")
    return AuditFilter(portfolio=portfolio, user=user, action=action, since=since, until=until)


async def list_entries(request: web.Request) -> web.Response:
    where = _filter(request)
    limit = parse_limit(request)
    cursor = request.query.get("cursor") or None
    if cursor is not None and not CURSOR_RE.fullmatch(cursor):
        raise ApiError(400, "bad_cursor", "cursor must be the nextCursor of an earlier page")
    entries, next_cursor = await AuditStore(request.app[admin.REDIS]).page(
        where, cursor=cursor, limit=limit
    )
    return list_response([json.loads(entry.to_json()) for entry in entries], next_cursor)


ROUTES = (
    Route(
        "GET",
        "/audit",
        list_entries,
        "The audit log, newest first: who did what (read-only)",
        200,
        response=AuditPage,
        query=AuditQuery,
        errors=(400,),
    ),
)
