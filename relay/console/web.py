"""What every console and portal page shares: sessions, CSRF, rendering, safe headers.

:func:`guard` is the middleware of both apps: a page needs a live session of the
app's kind (an operator for ``/console``, a portal visitor for ``/portal``), and
every POST needs that session's CSRF token in its form, a urlencoded one (any other
body is a 415). Every error is rendered as a page, never as a traceback or JSON: its
own status, 503 while Redis cannot serve, else a logged 500; every page is sent with
a CSP that allows no script.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp_jinja2
import redis.asyncio as aioredis
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from pydantic import ValidationError

from relay.admin import app as admin
from relay.admin.common import ApiError, store_down_message, validation_details
from relay.core.ids import is_well_formed
from relay.store.faults import REDIS_FAULTS, describe, is_transient
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

FORM_TYPE = "application/x-www-form-urlencoded"  # what every console and portal form sends
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


def _not_a_form(request: web.Request) -> web.Response | None:
    """415 for a POST whose declared body is not a urlencoded form (multipart, JSON, ...).

    The console's forms send nothing else; and bot/server_limits.py has read the body
    already, which aiohttp's multipart parser cannot read again (it would fail as a 500).
    """
    if request.method != "POST" or hdrs.CONTENT_TYPE not in request.headers:
        return None  # no declared type: read as an empty form, so the CSRF check refuses it
    if request.content_type == FORM_TYPE:
        return None
    response = _error_page(request, 415, f"Forms must be sent as {FORM_TYPE}.")
    response.headers[hdrs.ACCEPT] = FORM_TYPE  # RFC 9110 §15.5.16: what would be taken
    return response


def _unexpected_page(request: web.Request, exc: Exception) -> web.Response:
    """The page for an exception a handler raised: its own status and words if it is one
    of ours, 503 while Redis cannot serve, else a 500 that says nothing of it (logged)."""
    if isinstance(exc, ApiError):
        return _error_page(request, exc.status, exc.message, exc.details)
    if isinstance(exc, ValidationError):
        return _error_page(request, 422, "Some fields were refused.", validation_details(exc))
    if isinstance(exc, REDIS_FAULTS) and is_transient(exc):  # reset, loading, full, replica
        log.warning("store unavailable: %s", describe(exc), extra={"path": request.path})
        message = store_down_message(exc)
        return _error_page(request, 503, f"{message[0].upper()}{message[1:]}; try again soon.")
    log.exception("console: unhandled error", extra={"path": request.path})
    return _error_page(request, 500, "Something went wrong on our side; it has been logged.")


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

    async def answer(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (refusal := _not_a_form(request)) is not None:
            return refusal
        if public(request):
            return await handler(request)
        if not all(is_well_formed(v) for v in request.match_info.values()):
            # as in the admin API: never a store key ("sub_x:dlvs" names another key)
            return _error_page(request, 404, "No such page (malformed id).")
        session = await SessionStore(redis_of(request)).get(request.cookies.get(cookie))
        if session is None or session.kind != kind or not await valid(request, session):
            return refused(request)
        return await _checked(request, handler, session)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await answer(request, handler)
        except web.HTTPException as exc:
            if exc.status < 400:
                exc.headers.update(HEADERS)
                raise
            response = _error_page(request, exc.status, exc.reason)
        except Exception as exc:  # every page is a page, with its headers: never JSON
            response = _unexpected_page(request, exc)
        response.headers.update(HEADERS)
        return response

    return middleware
