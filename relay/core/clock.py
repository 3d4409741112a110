"""Time, in one place: the UTC clock, epoch milliseconds, and the wire's ISO form.

Redis holds times as epoch milliseconds; the wire (events, admin API) carries ISO 8601
UTC with milliseconds and a ``Z``. Everything that needs the current time takes a
:data:`Clock` so tests can hand it a fake one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Returns the current time as an aware UTC ``datetime``."""

Seconds = Callable[[], float]
"""A float clock in seconds (``time.monotonic`` for ages, ``time.time`` for the epoch)."""


def utc_now() -> datetime:
    """The real clock: now, as an aware UTC ``datetime``."""
    return datetime.now(UTC)


def utc_now_ms() -> datetime:
    """Now at millisecond precision (what the wire carries)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def epoch_ms() -> int:
    """Now in epoch milliseconds (as Redis holds it)."""
    return int(time.time() * 1000)


def to_ms(when: datetime) -> int:
    """``when`` in epoch milliseconds."""
    return int(when.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC ``datetime``."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def iso_ms(when: datetime) -> str:
    """``2026-04-17T12:00:00.000Z``: UTC, milliseconds, a ``Z``."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
