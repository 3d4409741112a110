"""Partner-portal links (docs/contract.md §10): signed, expiring, revocable. Pure: no I/O.

A token is ``base64url(payload) "." base64url(HMAC-SHA256(key, payload))`` with
payload ``"<subscription id>.<generation>.<expiry, unix s>"``. The key is derived
from ``RELAY_ADMIN_TOKEN`` (:func:`portal_key`), so only this relay issues links;
the generation is the subscription's revocation counter in Redis: a link whose
generation is not the current one was revoked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

DEFAULT_TTL_S = 24 * 3600
MIN_TTL_S = 60
MAX_TTL_S = 30 * 24 * 3600
TTL_PATTERN = r"^[1-9][0-9]{0,6}[smhd]$"
_TTL = re.compile(TTL_PATTERN)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MAX_TOKEN = 300


@dataclass(frozen=True, slots=True)
class PortalClaim:
    """What a portal link grants: one subscription, while its generation holds, until then."""

    subscription_id: str
    generation: int
    expires_at: int  # unix seconds


def portal_key(admin_token: str) -> bytes:
    """The signing key: a purpose-bound derivation of the admin token (never the token)."""
    return hmac.new(admin_token.encode(), b"glider-relay portal-link v1", hashlib.sha256).digest()


def parse_ttl(text: str | None) -> int:
    """``"24h"``, ``"30m"``, ``"7d"``, ``"90s"`` in seconds; ValueError outside 1 min..30 days."""
    if text is None:
        return DEFAULT_TTL_S
    if not _TTL.fullmatch(text):
        raise ValueError("ttl must be a number and a unit: s, m, h or d (e.g. 24h)")
    seconds = int(text[:-1]) * _UNITS[text[-1]]
    if not MIN_TTL_S <= seconds <= MAX_TTL_S:
        raise ValueError("ttl must be from 1 minute to 30 days")
    return seconds


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, b"portal:" + payload, hashlib.sha256).digest()


def sign(key: bytes, claim: PortalClaim) -> str:
    """The token of ``claim``."""
    payload = f"{claim.subscription_id}.{claim.generation}.{claim.expires_at}".encode()
    return f"{_b64(payload)}.{_b64(_mac(key, payload))}"


def verify(key: bytes, token: str, *, now_s: int) -> PortalClaim | None:
    """The claim of a well-signed, unexpired token; None for anything else."""
    if len(token) > _MAX_TOKEN or token.count(".") != 1:
        return None
    encoded, signature = token.split(".")
    try:
        payload, given = _unb64(encoded), _unb64(signature)
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(given, _mac(key, payload)):
        return None
    sid, generation, expires = payload.decode().split(".")
    claim = PortalClaim(sid, int(generation), int(expires))
    return claim if claim.expires_at > now_s else None
