"""Subscription secrets: ``whsec_`` + base64 of random bytes, and rotation with a grace period.

Pure: the caller supplies the time (and, in tests, the random bytes).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass

PREFIX = "whsec_"
SECRET_BYTES = 32
MIN_BYTES, MAX_BYTES = 24, 64
ROTATION_GRACE_MS = 24 * 3600 * 1000
# Secrets in grace at once, current excluded: a bound on the signature header, far above any
# real rotation schedule. A rotation beyond it is refused rather than dropping one that signs.
MAX_PREVIOUS = 10


class InvalidSecret(ValueError):
    """Not ``whsec_`` + base64 of 24 to 64 bytes."""


def new_secret(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """A fresh secret: ``whsec_`` + base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(random_bytes(SECRET_BYTES)).decode()


@functools.lru_cache(maxsize=4096)  # pure, and every attempt signs: decode each secret once
def secret_bytes(secret: str) -> bytes:
    """The HMAC key inside ``secret``; raises :class:`InvalidSecret` when malformed."""
    if not secret.startswith(PREFIX):
        raise InvalidSecret("a secret starts with whsec_")
    try:
        raw = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except binascii.Error:
        raise InvalidSecret("a secret is base64 after whsec_") from None
    if not MIN_BYTES <= len(raw) <= MAX_BYTES:
        raise InvalidSecret(f"a secret holds {MIN_BYTES} to {MAX_BYTES} bytes")
    return raw


@dataclass(frozen=True, slots=True)
class SigningKeys:
    """A subscription's current secret and every earlier one still inside its grace window.

    ``previous`` holds ``(secret, until_ms)`` pairs, oldest first: a receiver may still hold
    any secret that signed in the last 24 hours, so each keeps signing until its own end.
    """

    current: str
    previous: tuple[tuple[str, int], ...] = ()

    def active(self, now_ms: int) -> list[bytes]:
        """The keys to sign with at ``now_ms``: current first, then every one in grace."""
        keys = [secret_bytes(self.current)]
        keys.extend(secret_bytes(old) for old, until in self.previous if now_ms < until)
        return keys

    def rotated(self, new: str, now_ms: int, grace_ms: int = ROTATION_GRACE_MS) -> SigningKeys:
        """``new`` becomes current; the old current keeps signing for ``grace_ms``."""
        secret_bytes(new)
        kept = tuple((old, until) for old, until in self.previous if now_ms < until)
        return SigningKeys(current=new, previous=(*kept, (self.current, now_ms + grace_ms)))


def parse_previous(raw: str | None) -> tuple[tuple[str, int], ...]:
    """The stored ``prevSecrets`` field (JSON ``[[secret, until_ms], ...]``) as pairs."""
    if not raw:
        return ()
    return tuple((str(old), int(until)) for old, until in json.loads(raw))
