"""The retry schedule of a delivery: pure arithmetic, injectable so tests run in seconds.

The default spans more than 24 hours even at the low end of its jitter:
immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (27.6 h; at least 24.8 h).
A server's ``Retry-After`` (429/503) can only push a retry later, never earlier,
and is bounded so that a bogus header cannot park a delivery for days.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

DEFAULT_DELAYS_S: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """``delays_s[i]`` is the wait before attempt ``i + 1``; ``jitter`` is a +/- fraction."""

    delays_s: tuple[float, ...] = DEFAULT_DELAYS_S
    jitter: float = 0.1
    max_retry_after_s: float = 6 * 3600

    def __post_init__(self) -> None:
        if not self.delays_s:
            raise ValueError("a schedule has at least one attempt")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")

    @property
    def attempts(self) -> int:
        return len(self.delays_s)

    def delay_after(
        self,
        tries: int,
        *,
        retry_after_s: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds until the next attempt after ``tries`` failed ones; None when none is left."""
        if tries < 1:
            raise ValueError("tries counts attempts already made (1 or more)")
        if tries >= self.attempts:
            return None
        base = self.delays_s[tries]
        spread = ((rng or random).random() * 2 - 1) * self.jitter * base
        delay = base + spread
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_retry_after_s))
        return delay

    def minimum_span_s(self) -> float:
        """The shortest time from the first to the last attempt (all jitter negative)."""
        return sum(self.delays_s) * (1 - self.jitter)
