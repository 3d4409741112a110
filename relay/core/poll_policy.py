"""When to poll a Glider operation next: pure arithmetic, no I/O.

The first poll comes ``first_s`` after submission. After that the interval is a
fixed fraction of the operation's age, between ``min_s`` and ``cap_s``: a
long-running operation costs few requests, yet its end is noticed within about
``fraction`` of its duration (the interval never exceeds ``fraction`` x age, and
age never exceeds the duration at the last poll before the end). Jitter only
shortens an interval, so that bound holds, and spreads operations submitted
together. A ``Retry-After`` is a floor. Past ``deadline_s`` the operation is stuck.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PollPolicy:
    first_s: float = 2.0
    fraction: float = 0.1
    min_s: float = 2.0
    cap_s: float = 60.0
    jitter: float = 0.1
    deadline_s: float = 6 * 3600.0

    def delay(
        self,
        age_s: float,
        *,
        retry_after_s: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """Seconds until the next poll of an operation ``age_s`` old (0 = just submitted)."""
        if age_s <= 0:
            base = self.first_s
        else:
            base = min(self.cap_s, max(self.min_s, self.fraction * age_s))
            shaved = base * (1 - self.jitter * (rng or random).random())
            base = max(min(self.min_s, base), shaved)
        if retry_after_s is not None:
            base = max(base, retry_after_s)
        return base

    def next_age(
        self,
        age_s: float,
        *,
        retry_after_s: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """The age at the next poll; the deadline itself is always looked at once."""
        following = age_s + self.delay(age_s, retry_after_s=retry_after_s, rng=rng)
        if age_s < self.deadline_s < following:
            return self.deadline_s
        return following

    def is_stuck(self, age_s: float) -> bool:
        """Past the deadline without a terminal state."""
        return age_s >= self.deadline_s
