"""Prefixed ULIDs (``req_``, ``sub_``, ``dlv_``, ``evt_``): sortable by time, opaque to users."""

from __future__ import annotations

import os
import re
import threading

from relay.core.clock import epoch_ms

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80
_ULID_CHARS = 26
_PAIRS = [high + low for high in _CROCKFORD for low in _CROCKFORD]
_SHIFTS = tuple(range(10 * (_ULID_CHARS // 2 - 1), -1, -10))  # 120, 110, ..., 0


def ulid(now_ms: int | None = None, randomness: bytes | None = None) -> str:
    """A 26-character ULID: 48-bit millisecond time then 80 random bits, Crockford base32."""
    ms = epoch_ms() if now_ms is None else now_ms
    rand = os.urandom(10) if randomness is None else randomness
    return _encode((ms << _RANDOM_BITS) | int.from_bytes(rand, "big"))


def _encode(value: int) -> str:
    # Two characters (10 bits) at a time, from a table: half the steps of one at a time.
    return "".join([_PAIRS[(value >> shift) & 0x3FF] for shift in _SHIFTS])


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


def sibling_id(prefix: str, of: str) -> str:
    """``prefix`` + ``_`` + the ULID of ``of`` (an id from :func:`new_id`), else a new id.

    For the records made once with one request, in its own step (its ``command.received``
    audit entry, its ``rebalance.requested`` event): unique as the request id is, since a
    ULID is drawn once, and ordered with it, without drawing two more.
    """
    _, sep, ulid_part = of.partition("_")
    if sep and len(ulid_part) == _ULID_CHARS:
        return f"{prefix}_{ulid_part}"
    return new_id(prefix)


# What the admin API accepts as a path id (docs/contract.md §6): anything else is a 404 that
# never reaches the store (``sub_x:dlvs`` would name another key).
_WELL_FORMED = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_well_formed(value: str) -> bool:
    """True when ``value`` is 1 to 64 of ``A-Za-z0-9_-``: the shape of every id we hand out."""
    return _WELL_FORMED.fullmatch(value) is not None
