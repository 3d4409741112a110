"""How the simulated Glider misbehaves at the HTTP level, and a journal of what it was asked.

Faults come from the configured rates (seeded, so a run is repeatable) or are
queued by a test with :meth:`Chaos.fail_next`. A fault either refuses the request
before it does anything or (``after=True``) replaces the answer of a request that
has already taken effect, like a proxy that times out on a slow upstream.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import MutableSequence
from dataclasses import dataclass

from relay.core.clock import Clock
from relay.sim.config import SimConfig

# Statuses a random fault picks from: Glider's own 500 more often than a proxy's 502/503.
_RANDOM_STATUSES = (500, 500, 502, 503)

# The journal keeps the latest requests only, so a long-running simulator stays small.
JOURNAL_LIMIT = 10_000


@dataclass(frozen=True)
class Fault:
    """Answer ``status`` instead of the real response; ``after`` = once the handler ran."""

    status: int = 500
    after: bool = False
    method: str | None = None

    def applies_to(self, method: str) -> bool:
        return self.method is None or self.method == method


@dataclass
class RecordedRequest:
    """One request as it arrived; ``status`` is filled in once it is answered."""

    method: str
    path: str
    status: int | None = None


class Chaos:
    """Latency, injected 5xx, the per-IP rate limit and the request journal."""

    def __init__(self, config: SimConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._rng = random.Random(f"chaos:{config.seed}")
        self._queued: deque[Fault] = deque()
        self._window = -1
        self._window_count = 0
        self.latency_s = config.latency_ms / 1000
        # Public like latency_s, so a test can start and end a 429 storm mid-run.
        self.ip_limit_per_s = config.ip_rate_limit_per_s
        # Tests may swap in a list of their own (one that also times each arrival).
        self.journal: MutableSequence[RecordedRequest] = deque(maxlen=JOURNAL_LIMIT)

    def record(self, method: str, path: str) -> RecordedRequest:
        entry = RecordedRequest(method, path)
        self.journal.append(entry)
        return entry

    def count(self, method: str, path_suffix: str = "") -> int:
        """How many of the journaled requests have ``method`` and a raw path ending with
        ``path_suffix``."""
        return sum(1 for r in self.journal if r.method == method and r.path.endswith(path_suffix))

    def fail_next(
        self, count: int = 1, *, status: int = 500, after: bool = False, method: str | None = None
    ) -> None:
        """Queue ``count`` faults for the next matching requests, ahead of any random ones."""
        self._queued.extend(Fault(status, after, method) for _ in range(count))

    def next_fault(self, method: str) -> Fault | None:
        """The fault for this request, if any: a queued one first, else one drawn from the rate."""
        for fault in self._queued:
            if fault.applies_to(method):
                self._queued.remove(fault)
                return fault
        if self._config.error_rate and self._rng.random() < self._config.error_rate:
            return Fault(self._rng.choice(_RANDOM_STATUSES), after=self._rng.random() < 0.5)
        return None

    def rate_limited(self) -> int | None:
        """Seconds to wait if this request is over the per-IP limit (fixed one-second windows)."""
        limit = self.ip_limit_per_s
        if limit is None:
            return None
        now = self._clock().timestamp()
        window = math.floor(now)
        if window != self._window:
            self._window, self._window_count = window, 0
        if self._window_count >= limit:
            return max(1, math.ceil(window + 1 - now))
        self._window_count += 1
        return None
