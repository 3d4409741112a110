"""The simulated Glider's data and rules, with no HTTP in sight.

Everything time-dependent is derived from the injected clock when read, so a
test moves a fake clock forward and sees operations progress without sleeping.
Tenant isolation lives here too: another tenant's portfolio is simply not found.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from relay.core.clock import Clock, to_ms
from relay.core.ids import ulid
from relay.sim.config import Detour, Frequency, Outcome, ScheduleStatus, SimConfig, SimPortfolio
from relay.sim.operations import (
    OperationView,
    Plan,
    SimOperation,
    default_error,
    draw_plan,
    plan_steps,
)

INTERVAL_MS: dict[Frequency, int] = {
    "hourly": 3_600_000,
    "daily": 86_400_000,
    "weekly": 604_800_000,
    "monthly": 2_592_000_000,
}


class SimError(Exception):
    """A request the simulated Glider refuses."""


class PortfolioNotFound(SimError):
    def __init__(self, portfolio_id: str) -> None:
        super().__init__(portfolio_id)
        self.portfolio_id = portfolio_id


class OperationNotFound(SimError):
    def __init__(self, operation_id: str) -> None:
        super().__init__(operation_id)
        self.operation_id = operation_id


class NoSchedule(SimError):
    def __init__(self, portfolio_id: str) -> None:
        super().__init__(portfolio_id)
        self.portfolio_id = portfolio_id


class CooldownActive(SimError):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class ScheduleView:
    status: ScheduleStatus
    frequency: Frequency
    interval_ms: int
    next_due_at: datetime
    last_rebalance_at: datetime | None


@dataclass(frozen=True)
class PortfolioView:
    """A portfolio as ``GET /v2/portfolios/{id}`` shows it at one instant."""

    spec: SimPortfolio
    schedule: ScheduleView | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Accepted:
    """Answer to a manual rebalance; ``replayed`` when it is the one already in flight."""

    operation_id: str
    submitted_at: datetime
    replayed: bool


@dataclass
class _Portfolio:
    spec: SimPortfolio
    status: ScheduleStatus | None
    next_due_at: datetime
    created_at: datetime
    updated_at: datetime
    last_rebalance_at: datetime | None
    operations: list[SimOperation] = field(default_factory=list)


@dataclass(frozen=True)
class _Forced:
    outcome: Outcome
    detour: Detour | None
    error: str | None


class SimState:
    """Portfolios, schedules and rebalance operations of every tenant."""

    def __init__(self, config: SimConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._rng = random.Random(config.seed)
        self._portfolios = {p.id: self._initial(p) for p in config.portfolios}
        self._forced: dict[str, _Forced] = {
            p.id: _Forced(p.outcome, p.detour, p.error_message)
            for p in config.portfolios
            if p.outcome is not None
        }

    def _initial(self, spec: SimPortfolio) -> _Portfolio:
        now = self._clock()
        interval = timedelta(milliseconds=INTERVAL_MS[spec.frequency])
        # A paused schedule keeps the stale due time it had when it was stopped.
        next_due = now + interval if spec.schedule == "active" else now - interval
        created = now - timedelta(days=30)
        # A scheduled portfolio has run before; an unscheduled one never has.
        last = now - interval if spec.schedule is not None else None
        return _Portfolio(spec, spec.schedule, next_due, created, created, last)

    def _owned(self, portfolio_id: str, tenant: str) -> _Portfolio:
        found = self._portfolios.get(portfolio_id)
        if found is None or found.spec.tenant != tenant:
            raise PortfolioNotFound(portfolio_id)
        return found

    def portfolio(self, portfolio_id: str, tenant: str) -> PortfolioView:
        """The portfolio, or PortfolioNotFound when missing or another tenant's."""
        return self._view(self._owned(portfolio_id, tenant))

    def set_schedule(self, portfolio_id: str, tenant: str, status: ScheduleStatus) -> PortfolioView:
        """Start (``active``) or stop (``paused``); a no-op when already there."""
        found = self._owned(portfolio_id, tenant)
        if found.status is None:
            raise NoSchedule(portfolio_id)
        if found.status != status:
            now = self._clock()
            found.status = status
            found.updated_at = now
            if status == "active":
                found.next_due_at = now
        return self._view(found)

    def trigger_rebalance(self, portfolio_id: str, tenant: str) -> Accepted:
        """Submit a manual rebalance, or return the one in flight; CooldownActive if too soon."""
        found = self._owned(portfolio_id, tenant)
        now = self._clock()
        if found.operations:
            latest = found.operations[-1]
            if not latest.view(now).is_terminal:
                return Accepted(latest.operation_id, latest.submitted_at, replayed=True)
            ready_at = latest.finishes_at + timedelta(seconds=self._config.cooldown_s)
            if now < ready_at:
                wait = (ready_at - now).total_seconds()
                raise CooldownActive(max(1, math.ceil(wait)))
        operation = self._submit(found, now)
        found.operations.append(operation)
        return Accepted(operation.operation_id, operation.submitted_at, replayed=False)

    def operation(self, portfolio_id: str, tenant: str, operation_id: str) -> OperationView:
        """One operation of the portfolio; OperationNotFound if it belongs to no such pair."""
        found = self._owned(portfolio_id, tenant)
        for operation in found.operations:
            if operation.operation_id == operation_id:
                return operation.view(self._clock())
        raise OperationNotFound(operation_id)

    def operations(self, portfolio_id: str) -> list[OperationView]:
        """Every operation of a portfolio, oldest first (for tests and the CLI)."""
        now = self._clock()
        return [op.view(now) for op in self._portfolios[portfolio_id].operations]

    def force_outcome(
        self,
        portfolio_id: str,
        outcome: Outcome | None,
        *,
        detour: Detour | None = None,
        error: str | None = None,
    ) -> None:
        """Make the portfolio's next rebalances end this way (``None`` draws from rates again)."""
        if portfolio_id not in self._portfolios:
            raise PortfolioNotFound(portfolio_id)
        if outcome is None:
            self._forced.pop(portfolio_id, None)
        else:
            self._forced[portfolio_id] = _Forced(outcome, detour, error)

    def _submit(self, found: _Portfolio, now: datetime) -> SimOperation:
        pid = found.spec.id
        request_ulid = ulid(to_ms(now), self._rng.randbytes(10))
        operation_id = f"rebalance:{pid}:{pid}%3Amanual%3Areq_{request_ulid}"
        plan = self._plan(pid, random.Random(f"{self._config.seed}:{operation_id}"))
        steps = plan_steps(plan, self._config.op_duration_s)
        return SimOperation(operation_id, pid, "rebalance", now, steps, plan.error)

    def _plan(self, portfolio_id: str, rng: random.Random) -> Plan:
        forced = self._forced.get(portfolio_id)
        if forced is not None:
            # default_error gives None for a completed run; a forced message only shows on failure.
            error = default_error(forced.outcome, rng)
            if error is not None and forced.error is not None:
                error = forced.error
            return Plan(forced.outcome, forced.detour, error)
        cfg = self._config
        return draw_plan(
            rng,
            failure_rate=cfg.failure_rate,
            cancel_rate=cfg.cancel_rate,
            awaiting_user_rate=cfg.awaiting_user_rate,
            retrying_rate=cfg.retrying_rate,
        )

    def _view(self, found: _Portfolio) -> PortfolioView:
        now = self._clock()
        completed = [op.finishes_at for op in found.operations if op.view(now).state == "completed"]
        last_rebalance = max(completed, default=found.last_rebalance_at)
        updated = max(found.updated_at, last_rebalance or found.updated_at)
        schedule = None
        if found.status is not None:
            schedule = ScheduleView(
                status=found.status,
                frequency=found.spec.frequency,
                interval_ms=INTERVAL_MS[found.spec.frequency],
                next_due_at=found.next_due_at,
                last_rebalance_at=last_rebalance,
            )
        return PortfolioView(found.spec, schedule, found.created_at, updated)
