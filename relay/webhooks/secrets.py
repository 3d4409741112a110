"""Subscription secrets: ``whsec_`` + base64 of random bytes, and rotation with a grace period.

Pure: the caller supplies the time (and, in tests, the random bytes).
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

PREFIX = "whsec_"
SECRET_BYTES = 32
MIN_BYTES, MAX_BYTES = 24, 64
ROTATION_GRACE_MS = 24 * 3600 * 1000


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
    """A subscription's current secret and, for a while after a rotation, the previous one."""

    current: str
    previous: str | None = None
    previous_until_ms: int = 0

    def active(self, now_ms: int) -> list[bytes]:
        """The keys to sign with at ``now_ms``: current first, then previous while in grace."""
        keys = [secret_bytes(self.current)]
        if self.previous is not None and now_ms < self.previous_until_ms:
            keys.append(secret_bytes(self.previous))
        return keys

    def rotated(self, new: str, now_ms: int, grace_ms: int = ROTATION_GRACE_MS) -> SigningKeys:
        """``new`` becomes current; the old current keeps signing for ``grace_ms``."""
        secret_bytes(new)
        return SigningKeys(current=new, previous=self.current, previous_until_ms=now_ms + grace_ms)
