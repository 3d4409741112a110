"""What every console and portal page shares: sessions, CSRF, rendering, safe headers.

:func:`guard` is the middleware of both apps: a page needs a live session of the
app's kind (an operator for ``/console``, a portal visitor for ``/portal``), and
every POST needs that session's CSRF token in its form. Errors are rendered as a
page, never as a traceback; every page is sent with a CSP that allows no script.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp_jinja2
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import ValidationError

from relay.admin import app as admin
from relay.admin.common import ApiError, validation_details
from relay.core.ids import is_well_formed
from relay.store.sessions import Session, SessionKind, SessionStore

log = logging.getLogger(__name__)

HEADERS = {
    # No script at all: the pages work without one, and injected markup cannot run.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a portal token in a URL never leaks to a link
    "Cache-Control": "no-store",
}

SESSION = web.RequestKey("console_session", Session)  # the live session of the request
Validity = Callable[[web.Request, Session], Awaitable[bool]]


def redis_of(request: web.Request) -> aioredis.Redis:
    return request.app[admin.REDIS]


def is_https(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto") == "https"


def set_cookie(
    response: web.StreamResponse,
    request: web.Request,
    name: str,
    value: str,
    *,
    path: str,
    max_age: int,
) -> None:
    """A cookie that script cannot read, other sites cannot send, and HTTPS keeps HTTPS-only."""
    response.set_cookie(
        name,
        value,
        path=path,
        max_age=max_age,
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )


def session_of(request: web.Request) -> Session:
    return request[SESSION]


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """``template`` (autoescaped) with the session's CSRF token at hand as ``csrf``."""
    session = request.get(SESSION)
    full = {"csrf": session.csrf if session else "", "session": session, **context}
    return aiohttp_jinja2.render_template(template, request, full, status=status)


def see_other(location: str) -> web.Response:
    """303 to ``location`` (an answer, not an exception, so it can carry cookies)."""
    return web.Response(status=303, headers={"Location": location})


def _error_page(
    request: web.Request, status: int, message: str, details: Any = None
) -> web.Response:
    return render(
        request,
        "error.html",
        {"status": status, "message": message, "details": details or []},
        status=status,
    )


async def _checked(request: web.Request, handler: Handler, session: Session) -> web.StreamResponse:
    if request.method == "POST":
        form = await request.post()
        given = str(form.get("csrf", ""))
        if not hmac.compare_digest(given.encode(), session.csrf.encode()):
            log.warning("console: form without a valid CSRF token", extra={"path": request.path})
            return _error_page(request, 403, "This form is stale or forged (no valid CSRF token).")
    request[SESSION] = session
    return await handler(request)


def guard(
    *,
    kind: SessionKind,
    cookie: str,
    public: Callable[[web.Request], bool],
    refused: Callable[[web.Request], web.StreamResponse],
    valid: Validity,
) -> Middleware:
    """The app's middleware: session and CSRF checks, error pages, safe headers."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if public(request):
                response = await handler(request)
            elif not all(is_well_formed(v) for v in request.match_info.values()):
                # as in the admin API: never a store key ("sub_x:dlvs" names another key)
                response = _error_page(request, 404, "No such page (malformed id).")
            else:
                session = await SessionStore(redis_of(request)).get(request.cookies.get(cookie))
                if session is None or session.kind != kind or not await valid(request, session):
                    response = refused(request)
                else:
                    response = await _checked(request, handler, session)
        except web.HTTPException as exc:
            if exc.status < 400:
                exc.headers.update(HEADERS)
                raise
            response = _error_page(request, exc.status, exc.reason)
        except ApiError as exc:
            response = _error_page(request, exc.status, exc.message, exc.details)
        except ValidationError as exc:
            response = _error_page(
                request, 422, "Some fields were refused.", validation_details(exc)
            )
        response.headers.update(HEADERS)
        return response

    return middleware
