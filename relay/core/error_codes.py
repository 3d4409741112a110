"""Stable error codes for outcomes, from Glider client exceptions.

Events and replies carry one of these as ``error.code`` (a subscriber can switch
on it); Glider's own code, when it sent one, is kept in the message.
"""

from __future__ import annotations

from relay.glider import (
    BadRequest,
    CooldownActive,
    Forbidden,
    GliderError,
    GliderTimeout,
    GliderUnavailable,
    MalformedResponse,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
)

_CODES: tuple[tuple[type[GliderError], str], ...] = (
    (CooldownActive, "cooldown"),
    (RateLimited, "rate_limited"),
    (NotFound, "not_found"),
    (Forbidden, "forbidden"),
    (Unauthorized, "unauthorized"),
    (BadRequest, "bad_request"),
    (ServerError, "server_error"),
    (GliderTimeout, "timeout"),
    (GliderUnavailable, "unavailable"),
    (MalformedResponse, "malformed_response"),
)


def error_code(exc: GliderError) -> str:
    """``not_found``, ``cooldown``, ``server_error``...; ``glider_error`` for anything else."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return "glider_error"


def error_message(exc: GliderError) -> str:
    """Glider's message, with its own code (``API_200``) when it gave one."""
    return f"{exc.message} ({exc.code})" if exc.code else exc.message
