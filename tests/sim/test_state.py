"""The simulator's state machine, driven by a fake clock (no HTTP)."""

from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest

from relay.sim.clock import FakeClock
from relay.sim.config import (
    PF_MAIN,
    PF_NO_SCHEDULE,
    PF_OTHER_TENANT,
    PF_SHORT,
    PF_ULID,
    SimConfig,
    SimPortfolio,
)
from relay.sim.operations import Plan, draw_plan, plan_steps
from relay.sim.state import (
    CooldownActive,
    NoSchedule,
    OperationNotFound,
    PortfolioNotFound,
    SimState,
)

ACME = "acme"
OP_ID = re.compile(r"^rebalance:(?P<a>[^:]+):(?P<b>[^:%]+)%3Amanual%3Areq_[0-9A-HJKMNP-TV-Z]{26}$")


def make_state(**overrides: object) -> tuple[SimState, FakeClock]:
    clock = FakeClock()
    config = SimConfig.default().with_overrides(**overrides)
    return SimState(config, clock), clock


def states_over_time(state: SimState, clock: FakeClock, op_id: str, step: float) -> list[str]:
    seen: list[str] = []
    for _ in range(20):
        current = state.operation(PF_MAIN, ACME, op_id).state
        if not seen or seen[-1] != current:
            seen.append(current)
        clock.advance(step)
    return seen


def test_portfolio_is_found_only_by_its_own_tenant() -> None:
    """Another tenant's portfolio is indistinguishable from a missing one."""
    state, _ = make_state()
    assert state.portfolio(PF_MAIN, ACME).spec.id == PF_MAIN
    with pytest.raises(PortfolioNotFound):
        state.portfolio(PF_OTHER_TENANT, ACME)
    with pytest.raises(PortfolioNotFound):
        state.portfolio("pf_missing", ACME)


def test_stop_is_idempotent() -> None:
    """Stopping a paused portfolio changes nothing, not even updatedAt."""
    state, clock = make_state()
    first = state.set_schedule(PF_MAIN, ACME, "paused")
    clock.advance(60)
    second = state.set_schedule(PF_MAIN, ACME, "paused")
    assert first.schedule is not None
    assert first.schedule.status == "paused"
    assert second == first


def test_start_resets_next_due_only_on_a_real_transition() -> None:
    """paused→active sets nextDueAt to now; start on an active portfolio leaves it alone."""
    state, clock = make_state()
    clock.advance(30)
    resumed = state.set_schedule(PF_ULID, ACME, "active")
    assert resumed.schedule is not None
    assert resumed.schedule.status == "active"
    assert resumed.schedule.next_due_at == clock()
    assert resumed.updated_at == clock()
    clock.advance(30)
    again = state.set_schedule(PF_ULID, ACME, "active")
    assert again == resumed
    untouched = state.portfolio(PF_MAIN, ACME).schedule
    assert state.set_schedule(PF_MAIN, ACME, "active").schedule == untouched


def test_start_and_stop_without_schedule_are_refused() -> None:
    """A portfolio with no rebalance schedule cannot be started or stopped."""
    state, _ = make_state()
    assert state.portfolio(PF_NO_SCHEDULE, ACME).schedule is None
    with pytest.raises(NoSchedule):
        state.set_schedule(PF_NO_SCHEDULE, ACME, "active")
    with pytest.raises(NoSchedule):
        state.set_schedule(PF_NO_SCHEDULE, ACME, "paused")


def test_rebalance_operation_id_has_glider_shape() -> None:
    """The operationId is rebalance:<pid>:<pid>%3Amanual%3Areq_<ULID>."""
    state, clock = make_state()
    accepted = state.trigger_rebalance(PF_MAIN, ACME)
    match = OP_ID.match(accepted.operation_id)
    assert match is not None
    assert match["a"] == match["b"] == PF_MAIN
    assert accepted.submitted_at == clock()
    assert not accepted.replayed


def test_rebalance_in_flight_returns_the_same_operation() -> None:
    """While a rebalance runs, another trigger returns its id and original submittedAt."""
    state, clock = make_state(op_duration_s=10)
    first = state.trigger_rebalance(PF_MAIN, ACME)
    clock.advance(5)
    second = state.trigger_rebalance(PF_MAIN, ACME)
    assert (second.operation_id, second.submitted_at) == (first.operation_id, first.submitted_at)
    assert second.replayed
    assert len(state.operations(PF_MAIN)) == 1


def test_cooldown_is_measured_from_the_last_finish() -> None:
    """After a run ends, a new trigger within the cooldown is refused with whole seconds."""
    state, clock = make_state(op_duration_s=3, cooldown_s=10)
    state.trigger_rebalance(PF_MAIN, ACME)
    clock.advance(3)  # finished now
    with pytest.raises(CooldownActive) as refused:
        state.trigger_rebalance(PF_MAIN, ACME)
    assert refused.value.retry_after_s == 10
    clock.advance(9.5)
    with pytest.raises(CooldownActive) as refused:
        state.trigger_rebalance(PF_MAIN, ACME)
    assert refused.value.retry_after_s == 1
    clock.advance(0.5)
    assert not state.trigger_rebalance(PF_MAIN, ACME).replayed
    assert len(state.operations(PF_MAIN)) == 2


def test_cooldown_is_per_portfolio() -> None:
    """One portfolio's cooldown does not hold back another's rebalance."""
    state, _clock = make_state(op_duration_s=0, cooldown_s=60)
    state.trigger_rebalance(PF_MAIN, ACME)
    with pytest.raises(CooldownActive):
        state.trigger_rebalance(PF_MAIN, ACME)
    assert not state.trigger_rebalance(PF_SHORT, ACME).replayed


def test_operation_moves_accepted_running_completed() -> None:
    """updatedAt follows each transition; finishedAt appears exactly at the terminal state."""
    state, clock = make_state(op_duration_s=10)
    start = clock()
    op_id = state.trigger_rebalance(PF_MAIN, ACME).operation_id
    view = state.operation(PF_MAIN, ACME, op_id)
    assert (view.state, view.updated_at, view.finished_at) == ("accepted", start, None)
    clock.advance(2)
    view = state.operation(PF_MAIN, ACME, op_id)
    assert (view.state, view.updated_at, view.finished_at) == ("running", clock(), None)
    clock.advance(5)
    assert state.operation(PF_MAIN, ACME, op_id).updated_at == start + timedelta(seconds=2)
    clock.advance(3)
    view = state.operation(PF_MAIN, ACME, op_id)
    assert view.state == "completed"
    assert view.finished_at == view.updated_at == start + timedelta(seconds=10)
    assert view.created_at == start
    assert view.error is None
    assert view.kind == "rebalance"


def test_failed_operation_carries_an_error_only_once_terminal() -> None:
    """A forced failure has no error while running and a reason once failed."""
    state, clock = make_state(op_duration_s=4)
    state.force_outcome(PF_MAIN, "failed", error="Swap failed: <!channel> slippage")
    op_id = state.trigger_rebalance(PF_MAIN, ACME).operation_id
    clock.advance(1)
    assert state.operation(PF_MAIN, ACME, op_id).error is None
    clock.advance(3)
    view = state.operation(PF_MAIN, ACME, op_id)
    assert view.state == "failed"
    assert view.error == "Swap failed: <!channel> slippage"
    assert view.finished_at == clock()


def test_awaiting_user_detour_returns_to_running() -> None:
    """A run can wait on its end-user and then resume to completion."""
    state, clock = make_state(op_duration_s=10)
    state.force_outcome(PF_MAIN, "completed", detour="awaiting_user")
    op_id = state.trigger_rebalance(PF_MAIN, ACME).operation_id
    seen = states_over_time(state, clock, op_id, step=1)
    assert seen == ["accepted", "running", "awaiting_user", "running", "completed"]


def test_awaiting_user_can_end_cancelled() -> None:
    """A run waiting on its end-user may be cancelled, with a reason."""
    state, clock = make_state(op_duration_s=10)
    state.force_outcome(PF_MAIN, "cancelled", detour="awaiting_user")
    op_id = state.trigger_rebalance(PF_MAIN, ACME).operation_id
    assert states_over_time(state, clock, op_id, step=1) == [
        "accepted",
        "running",
        "awaiting_user",
        "cancelled",
    ]
    view = state.operation(PF_MAIN, ACME, op_id)
    assert view.error is not None
    assert view.error.startswith("Cancelled")


def test_retrying_detour() -> None:
    """A transient failure shows as retrying, then running again."""
    state, clock = make_state(op_duration_s=10, retrying_rate=1.0)
    op_id = state.trigger_rebalance(PF_MAIN, ACME).operation_id
    seen = states_over_time(state, clock, op_id, step=1)
    assert seen == ["accepted", "running", "retrying", "running", "completed"]


def test_last_rebalance_at_moves_on_completion_only() -> None:
    """lastRebalanceAt becomes the finish time of a completed run, not of a failed one."""
    state, clock = make_state(op_duration_s=2, cooldown_s=0)
    before = state.portfolio(PF_MAIN, ACME).schedule
    assert before is not None
    state.force_outcome(PF_MAIN, "failed")
    state.trigger_rebalance(PF_MAIN, ACME)
    clock.advance(2)
    after_failure = state.portfolio(PF_MAIN, ACME).schedule
    assert after_failure is not None
    assert after_failure.last_rebalance_at == before.last_rebalance_at
    state.force_outcome(PF_MAIN, None)
    state.trigger_rebalance(PF_MAIN, ACME)
    clock.advance(1)
    running = state.portfolio(PF_MAIN, ACME)
    assert running.schedule is not None
    assert running.schedule.last_rebalance_at == before.last_rebalance_at
    clock.advance(1)
    done = state.portfolio(PF_MAIN, ACME)
    assert done.schedule is not None
    assert done.schedule.last_rebalance_at == clock()
    assert done.updated_at == clock()


def test_operation_is_scoped_to_its_portfolio_and_tenant() -> None:
    """An operation id under another portfolio is not found; another tenant sees no portfolio."""
    state, _ = make_state()
    op_id = state.trigger_rebalance(PF_MAIN, ACME).operation_id
    with pytest.raises(OperationNotFound):
        state.operation(PF_SHORT, ACME, op_id)
    with pytest.raises(PortfolioNotFound):
        state.operation(PF_MAIN, "globex", op_id)


def test_runs_are_deterministic_for_a_seed() -> None:
    """The same seed and clock give the same operation ids and outcomes."""
    runs = []
    for _ in range(2):
        state, clock = make_state(seed=7, failure_rate=0.5, op_duration_s=1, cooldown_s=0)
        outcomes = []
        for _ in range(6):
            op_id = state.trigger_rebalance(PF_MAIN, ACME).operation_id
            clock.advance(1)
            outcomes.append((op_id, state.operation(PF_MAIN, ACME, op_id).state))
        runs.append(outcomes)
    assert runs[0] == runs[1]
    assert {state for _, state in runs[0]} == {"completed", "failed"}


def test_outcome_can_be_forced_in_config() -> None:
    """A portfolio's outcome set in the seed overrides the rates."""
    state, _clock = make_state(
        op_duration_s=0,
        portfolios=(SimPortfolio(id="pf_doomed", tenant=ACME, outcome="cancelled"),),
    )
    op_id = state.trigger_rebalance("pf_doomed", ACME).operation_id
    assert state.operation("pf_doomed", ACME, op_id).state == "cancelled"


def test_force_outcome_on_unknown_portfolio_is_refused() -> None:
    """Forcing an outcome names a portfolio that exists."""
    state, _ = make_state()
    with pytest.raises(PortfolioNotFound):
        state.force_outcome("pf_missing", "failed")


def test_zero_duration_operation_is_terminal_at_once() -> None:
    """With no duration every step falls at submission and the last one wins."""
    steps = plan_steps(Plan("completed", "retrying", None), 0)
    assert [s.after_s for s in steps] == [0.0] * 5
    state, _ = make_state(op_duration_s=0)
    op_id = state.trigger_rebalance(PF_MAIN, ACME).operation_id
    assert state.operation(PF_MAIN, ACME, op_id).state == "completed"


@pytest.mark.parametrize(
    ("rates", "outcome", "detour"),
    [
        ({"failure_rate": 1.0}, "failed", None),
        ({"cancel_rate": 1.0}, "cancelled", None),
        ({"awaiting_user_rate": 1.0}, "completed", "awaiting_user"),
        ({"retrying_rate": 1.0}, "completed", "retrying"),
        ({}, "completed", None),
    ],
)
def test_draw_plan_follows_the_rates(
    rates: dict[str, float], outcome: str, detour: str | None
) -> None:
    """A rate of 1 always happens and a rate of 0 never does."""
    base = {"failure_rate": 0.0, "cancel_rate": 0.0, "awaiting_user_rate": 0.0}
    plan = draw_plan(random.Random(1), **{**base, "retrying_rate": 0.0, **rates})
    assert (plan.outcome, plan.detour) == (outcome, detour)
    assert (plan.error is None) == (outcome == "completed")
