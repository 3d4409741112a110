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


def is_slack_signed(
    secret: bytes, body: bytes, timestamp: str | None, signature: str | None, *, now: float
) -> bool:
    """True when ``signature`` is ``v0=`` + HMAC-SHA256 of ``v0:{timestamp}:{body}``, in time."""
    if not timestamp or not signature:
        return False
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= _MAX_DIGITS):
        return False
    if abs(now - int(timestamp)) > WINDOW_S:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


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
