"""What the fuzz tests share: hypothesis settings and the per-test case counter."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings

# Same inputs on every run (CI stability), no example database, no timing limits.
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


@dataclass
class Tally:
    """Cases run by one test, by label (an outcome, a status code, an operation)."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, label: str, count: int = 1) -> None:
        self.counts[label] += count

    @property
    def total(self) -> int:
        return sum(self.counts.values())
