"""Prefixed ULIDs (``req_``, ``sub_``, ``dlv_``, ``evt_``): sortable by time, opaque to users."""

from __future__ import annotations

import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(now_ms: int | None = None, randomness: bytes | None = None) -> str:
    """A 26-character ULID: 48-bit millisecond time then 80 random bits, Crockford base32."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = os.urandom(10) if randomness is None else randomness
    value = (ms << 80) | int.from_bytes(rand, "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 0x1F])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """``prefix`` + ``_`` + ULID, e.g. ``req_01JWZ...``."""
    return f"{prefix}_{ulid()}"
