"""One deadline per Slack request, that every step of its answer draws from.

Slack waits 3 s for the HTTP answer to a slash command or a click (docs/contract.md §4.4).
The steps of an answer (the user groups of the access policy, Glider, the enqueue, an
audit entry, a record lookup) each have a budget of their own; run one after another,
those budgets add up past Slack's 3 s. So the request gets one deadline when it arrives,
and each step waits at most for what is left of it (:meth:`Deadline.cap`): the answer
goes out in time, and says what could not be checked by then.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

# Slack gives up at 3 s; the half second left is for the answer to reach Slack.
ACK_BUDGET_S = 2.5


@dataclass(frozen=True)
class Deadline:
    """When the answer to one Slack request must be ready, on the event loop's clock."""

    at: float

    @classmethod
    def within(cls, seconds: float = ACK_BUDGET_S) -> Deadline:
        """The deadline ``seconds`` from now (a request's arrival)."""
        return cls(asyncio.get_running_loop().time() + seconds)

    def left(self) -> float:
        """Seconds left before the deadline (0 once it has passed)."""
        return max(0.0, self.at - asyncio.get_running_loop().time())

    def cap(self, budget: float) -> float:
        """A step's own ``budget``, cut to what is left of the deadline."""
        return min(budget, self.left())
