"""Slack's v0 request signature, checked over the raw body before anything parses it.

Bolt verifies requests too, but only after it has parsed the body (JSON when it
starts with ``{``) and with ``int()`` on the timestamp header, so junk in either
raised instead of being refused. This check accepts any header value and any
bytes, and says only yes or no.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs

WINDOW_S = 5 * 60  # Slack's replay window
_MAX_DIGITS = 12


# Why a request was refused: a short label (metrics) and its words (the log line).
UNSIGNED = "unsigned"
BAD_TIMESTAMP = "bad_timestamp"
STALE = "stale"
MISMATCH = "mismatch"
PROBLEMS = {
    UNSIGNED: "no X-Slack-Signature or X-Slack-Request-Timestamp header",
    BAD_TIMESTAMP: "X-Slack-Request-Timestamp is not a unix time",
    STALE: "timestamp outside Slack's 5-minute window (replayed, or a clock off)",
    MISMATCH: "signature does not match (wrong SLACK_SIGNING_SECRET, or forged)",
}


def signature_problem(
    secret: bytes, body: bytes, timestamp: str | None, signature: str | None, *, now: float
) -> str | None:
    """None when ``signature`` is ``v0=`` + HMAC-SHA256 of ``v0:{timestamp}:{body}``, in
    time; else the label of what is wrong (a key of :data:`PROBLEMS`)."""
    if not timestamp or not signature:
        return UNSIGNED
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= _MAX_DIGITS):
        return BAD_TIMESTAMP
    if abs(now - int(timestamp)) > WINDOW_S:
        return STALE
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return MISMATCH
    return None


def is_slack_signed(
    secret: bytes, body: bytes, timestamp: str | None, signature: str | None, *, now: float
) -> bool:
    """True when ``signature`` is ``v0=`` + HMAC-SHA256 of ``v0:{timestamp}:{body}``, in time."""
    return signature_problem(secret, body, timestamp, signature, now=now) is None


def replay_key(signature: str | None) -> str | None:
    """A dedupe id for a signed request that has no ``trigger_id``, or None when unsigned.

    The v0 signature is an HMAC of timestamp and body, so a replay inside the window
    carries the same one and any other request a different one. Digested, so the
    stored id is short and never the header itself.
    """
    if not signature:
        return None
    return "sig." + hashlib.sha256(signature.encode("utf-8", "replace")).hexdigest()[:32]


def is_ssl_check(body: bytes) -> bool:
    """Slack's unsigned ``ssl_check=1`` probe of a command URL (Bolt answers it, 200)."""
    form = parse_qs(body.decode("utf-8", "replace"))
    return form.get("ssl_check") == ["1"]
