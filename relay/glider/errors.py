"""Everything that can go wrong talking to Glider, as one exception hierarchy.

``retryable`` says whether the same request may succeed if simply sent again
later; whether it is *safe* to send again is the client's call (a manual
rebalance never is once it may have reached Glider).
"""

from __future__ import annotations

import re

from relay.core.bounds import ERROR_CODE_CHARS, ERROR_MESSAGE_CHARS, ID_CHARS, clip
from relay.core.redact import REDACTED, redact

# Glider keys are ``gldr_sk_...`` (docs/glider-api.md §2.1). Glider's own words never hold
# one, so any key-shaped token in them is an echo (of ours, or of a key the relay does not
# know, such as another environment's) and goes, whatever its length.
_GLIDER_KEY = re.compile(r"gldr_sk_[A-Za-z0-9_\-.~+/=]*", re.IGNORECASE)


def scrub(text: str) -> str:
    """Text from Glider with every registered secret and every Glider-key-shaped token redacted.

    Call it before anything cuts or reshapes the text: a cut first could keep the
    start of a secret, which redaction no longer recognises.
    """
    return _GLIDER_KEY.sub(REDACTED, redact(text))


def upstream_text(text: str | None, limit: int) -> str | None:
    """Text from Glider (or a proxy before it) as the relay may keep it: scrubbed, then cut."""
    return None if text is None else clip(scrub(text), limit)


class GliderError(Exception):
    """A failed Glider call, with what Glider said and the ids to quote to its support."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        correlation_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        # Where Glider's words enter the relay: everything after this sees them redacted
        # and bounded (records, events, webhook bodies, Slack, the admin API, logs).
        message = upstream_text(message, ERROR_MESSAGE_CHARS) or ""
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = upstream_text(code, ERROR_CODE_CHARS)
        self.request_id = upstream_text(request_id, ID_CHARS)
        self.correlation_id = upstream_text(correlation_id, ID_CHARS)
        self.retry_after = retry_after
        self.attempts = 1

    def __str__(self) -> str:
        parts = [str(self.status) if self.status is not None else type(self).__name__]
        if self.code:
            parts.append(self.code)
        parts.append(self.message)
        if self.request_id:
            parts.append(f"(request {self.request_id})")
        return " ".join(parts)


class BadRequest(GliderError):
    """400: e.g. start/stop on a portfolio without a rebalance schedule."""


class Unauthorized(GliderError):
    """401: the API key is missing or invalid."""


class Forbidden(GliderError):
    """403 ``API_104``: the key lacks the route's scope."""


class NotFound(GliderError):
    """404: no such portfolio or operation, or another tenant's (indistinguishable)."""


class CooldownActive(GliderError):
    """429 in the v2 envelope on a manual rebalance: too soon after the last; see retry_after."""


class RateLimited(GliderError):
    """429 from the per-IP limiter (flat body, not the envelope); see retry_after."""

    retryable = True


class ServerError(GliderError):
    """5xx from Glider or a proxy in front of it."""

    retryable = True


class GliderTimeout(GliderError):
    """No complete answer in time; the request may or may not have taken effect."""

    retryable = True


class GliderUnavailable(GliderError):
    """The connection failed. ``request_sent`` is False only when nothing left this process."""

    retryable = True

    def __init__(self, message: str, *, request_sent: bool, permanent: bool = False) -> None:
        super().__init__(message)  # bounded and redacted there
        self.request_sent = request_sent
        # A certificate or TLS failure will not fix itself by retrying.
        self.retryable = not permanent


class MalformedResponse(GliderError):
    """The answer was not what the contract promises: not JSON, wrong shape, or too big."""
