"""Pure retry arithmetic: capped exponential backoff with jitter, and ``Retry-After``.

Sleeping happens elsewhere; these functions only compute how long.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from relay.core.clock import utc_now


def backoff_delay(
    attempt: int,
    *,
    base: float = 0.5,
    factor: float = 2.0,
    cap: float = 30.0,
    jitter: float = 1.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    ``base * factor**(attempt-1)`` capped at ``cap``, then reduced by up to
    ``jitter`` (a fraction, 1.0 = "full jitter") so retries from many clients spread out.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    exp = min(cap, base * factor ** (attempt - 1))
    spread = (rng or random).random() * jitter * exp
    return max(0.0, exp - spread)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent/bad."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or utc_now())).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def retry_wait(
    attempt: int,
    retry_after: float | None,
    *,
    cap: float = 30.0,
    rng: random.Random | None = None,
) -> float:
    """The wait before a retry: the server's ``Retry-After`` wins over computed backoff."""
    if retry_after is not None:
        return retry_after
    return backoff_delay(attempt, cap=cap, rng=rng)
