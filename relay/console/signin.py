"""Console sign-in with the admin token, and sign-out (docs/contract.md §10).

A failed sign-in counts against the client's address; after
``SIGN_IN_MAX_FAILURES`` in ``SIGN_IN_WINDOW_S`` the form answers 429 until the
window ends. Both outcomes are logged and audited (``console.signed_in``,
``console.sign_in_failed``); the token itself is never logged.
"""

from __future__ import annotations

import hmac
import logging
import secrets

from aiohttp import web

from relay.admin import app as admin
from relay.console.web import redis_of, render, see_other, session_of, set_cookie
from relay.core.audit import CONSOLE, AuditAction, new_entry
from relay.store.audit import AuditStore
from relay.store.sessions import (
    SIGN_IN_WINDOW_S,
    SessionStore,
    record_sign_in_failure,
    sign_in_budget,
)

log = logging.getLogger(__name__)

COOKIE = "gr_console"
SIGN_IN_COOKIE = "gr_console_signin"  # the sign-in form's CSRF token (no session yet)
PATH = "/console"
SESSION_TTL_S = 8 * 3600


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


async def sign_in_form(request: web.Request) -> web.Response:
    return _form(request, 200, None)


def _form(request: web.Request, status: int, problem: str | None) -> web.Response:
    """The sign-in form with a fresh CSRF token (cookie and hidden field)."""
    token = secrets.token_urlsafe(32)
    response = render(
        request, "sign_in.html", {"signin_csrf": token, "problem": problem}, status=status
    )
    set_cookie(response, request, SIGN_IN_COOKIE, token, path=PATH, max_age=3600)
    return response


async def _audit(request: web.Request, action: AuditAction, detail: str) -> None:
    await AuditStore(redis_of(request)).append(new_entry(action, CONSOLE, detail=detail))


async def sign_in(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not hmac.compare_digest(
        str(form.get("csrf", "")).encode(), expected.encode()
    ):
        return _form(request, 403, "The sign-in form was stale; please try again.")
    redis, client = redis_of(request), _client(request)
    budget = await sign_in_budget(redis, client)
    if budget.exhausted:
        log.warning("console sign-in refused: too many failures", extra={"client": client})
        await _audit(request, AuditAction.CONSOLE_SIGN_IN_FAILED, f"{client}: rate-limited")
        response = _form(
            request, 429, f"Too many failed sign-ins; retry in {budget.retry_after_s} s."
        )
        response.headers["Retry-After"] = str(budget.retry_after_s or SIGN_IN_WINDOW_S)
        return response
    token = request.app[admin.SETTINGS].relay_admin_token
    given = str(form.get("token", "")).encode()
    if token is None or not hmac.compare_digest(given, token.get_secret_value().encode()):
        failures = await record_sign_in_failure(redis, client)
        log.warning("console sign-in failed", extra={"client": client, "failures": failures})
        await _audit(request, AuditAction.CONSOLE_SIGN_IN_FAILED, f"{client}: wrong token")
        return _form(request, 401, "That is not the admin token.")
    session = await SessionStore(redis).open("operator", ttl_s=SESSION_TTL_S)
    log.info("console sign-in", extra={"client": client})
    await _audit(request, AuditAction.CONSOLE_SIGNED_IN, client)
    response = see_other(PATH)
    set_cookie(response, request, COOKIE, session.id, path=PATH, max_age=SESSION_TTL_S)
    response.del_cookie(SIGN_IN_COOKIE, path=PATH)
    return response


async def sign_out(request: web.Request) -> web.StreamResponse:
    await SessionStore(redis_of(request)).close(session_of(request).id)
    await _audit(request, AuditAction.CONSOLE_SIGNED_OUT, f"{_client(request)}: signed out")
    response = see_other(f"{PATH}/sign-in")
    response.del_cookie(COOKIE, path=PATH)
    return response
