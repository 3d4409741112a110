"""Prefixed ULIDs (``req_``, ``sub_``, ``dlv_``, ``evt_``): sortable by time, opaque to users."""

from __future__ import annotations

import os
import re
import threading

from relay.core.clock import epoch_ms

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80


def ulid(now_ms: int | None = None, randomness: bytes | None = None) -> str:
    """A 26-character ULID: 48-bit millisecond time then 80 random bits, Crockford base32."""
    ms = epoch_ms() if now_ms is None else now_ms
    rand = os.urandom(10) if randomness is None else randomness
    return _encode((ms << _RANDOM_BITS) | int.from_bytes(rand, "big"))


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 0x1F])
        value >>= 5
    return "".join(reversed(chars))


class MonotonicUlid:
    """ULIDs that sort in creation order within a process, even inside one millisecond.

    Within the same millisecond the random part is incremented (the ULID spec's
    monotonic mode), so ids made later never sort before earlier ones.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def __call__(self, now_ms: int | None = None) -> str:
        ms = epoch_ms() if now_ms is None else now_ms
        with self._lock:
            candidate = (ms << _RANDOM_BITS) | int.from_bytes(os.urandom(10), "big")
            if candidate <= self._last:
                candidate = self._last + 1
            self._last = candidate
        return _encode(candidate)


_monotonic = MonotonicUlid()


def new_id(prefix: str) -> str:
    """``prefix`` + ``_`` + a monotonic ULID, e.g. ``req_01JWZ...``."""
    return f"{prefix}_{_monotonic()}"


# What the admin API accepts as a path id (docs/contract.md §6): anything else is a 404 that
# never reaches the store (``sub_x:dlvs`` would name another key).
_WELL_FORMED = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_well_formed(value: str) -> bool:
    """True when ``value`` is 1 to 64 of ``A-Za-z0-9_-``: the shape of every id we hand out."""
    return _WELL_FORMED.fullmatch(value) is not None
