"""A simulated operation is a timeline fixed when it is submitted; its state is read off the clock.

``plan_steps`` decides the whole life of an operation up front (deterministic for a
given RNG), so reading it later at any time, in any order, always agrees with itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from relay.sim.config import Detour, Outcome

OpState = Literal[
    "accepted", "running", "retrying", "awaiting_user", "completed", "failed", "cancelled"
]
TERMINAL: frozenset[OpState] = frozenset({"completed", "failed", "cancelled"})

# Where each step falls, as a fraction of the operation's duration.
_RUNNING_AT = 0.2
_DETOUR_AT = 0.4
_BACK_AT = 0.6

_FAILURES = (
    "Swap failed: price impact above the strategy's 50 bps limit",
    "Insufficient native balance for gas on eip155:8453",
    "RPC error: upstream node timed out",
)
_CANCELLATIONS = (
    "Cancelled: end-user signature was not renewed in time",
    "Cancelled: portfolio allocation changed while the run was queued",
)


@dataclass(frozen=True)
class Step:
    """The operation enters ``state`` ``after_s`` seconds after submission."""

    after_s: float
    state: OpState


@dataclass(frozen=True)
class Plan:
    """How an operation will end, drawn from the rates or forced."""

    outcome: Outcome
    detour: Detour | None
    error: str | None


@dataclass(frozen=True)
class OperationView:
    """An operation as ``GET .../operations/{id}`` shows it at one instant."""

    operation_id: str
    portfolio_id: str
    kind: str
    state: OpState
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    error: str | None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL


def draw_plan(
    rng: random.Random,
    *,
    failure_rate: float,
    cancel_rate: float,
    awaiting_user_rate: float,
    retrying_rate: float,
) -> Plan:
    """Pick the outcome, then an optional detour, from the configured rates."""
    roll = rng.random()
    outcome: Outcome = "completed"
    if roll < failure_rate:
        outcome = "failed"
    elif roll < failure_rate + cancel_rate:
        outcome = "cancelled"
    roll = rng.random()
    detour: Detour | None = None
    if roll < awaiting_user_rate:
        detour = "awaiting_user"
    elif roll < awaiting_user_rate + retrying_rate:
        detour = "retrying"
    return Plan(outcome, detour, default_error(outcome, rng))


def default_error(outcome: Outcome, rng: random.Random) -> str | None:
    """A free-form reason like Glider's, or None for a completed operation."""
    if outcome == "failed":
        return rng.choice(_FAILURES)
    if outcome == "cancelled":
        return rng.choice(_CANCELLATIONS)
    return None


def plan_steps(plan: Plan, duration_s: float) -> tuple[Step, ...]:
    """accepted → running → [detour → running] → outcome; an awaiting_user detour may cancel."""

    def at(fraction: float) -> float:
        # Whole microseconds, so a clock advanced by exactly that much reaches the step.
        return round(duration_s * fraction, 6)

    steps = [Step(0.0, "accepted"), Step(at(_RUNNING_AT), "running")]
    if plan.detour is not None:
        steps.append(Step(at(_DETOUR_AT), plan.detour))
        # A run waiting on its end-user that ends cancelled never resumes running.
        if not (plan.detour == "awaiting_user" and plan.outcome == "cancelled"):
            steps.append(Step(at(_BACK_AT), "running"))
    steps.append(Step(at(1.0), plan.outcome))
    return tuple(steps)


@dataclass(frozen=True)
class SimOperation:
    """A submitted operation: identity, submission time and its planned steps."""

    operation_id: str
    portfolio_id: str
    kind: str
    submitted_at: datetime
    steps: tuple[Step, ...]
    error: str | None

    @property
    def finishes_at(self) -> datetime:
        return self.submitted_at + timedelta(seconds=self.steps[-1].after_s)

    def view(self, now: datetime) -> OperationView:
        """The state at ``now``: the last step already reached."""
        elapsed = (now - self.submitted_at).total_seconds()
        current = self.steps[0]
        for step in self.steps:
            if step.after_s <= elapsed:
                current = step
        changed_at = self.submitted_at + timedelta(seconds=current.after_s)
        terminal = current.state in TERMINAL
        return OperationView(
            operation_id=self.operation_id,
            portfolio_id=self.portfolio_id,
            kind=self.kind,
            state=current.state,
            created_at=self.submitted_at,
            updated_at=changed_at,
            finished_at=changed_at if terminal else None,
            error=self.error if terminal and current.state != "completed" else None,
        )
