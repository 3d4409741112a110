"""Pure transition rules: states left, fields written, events (docs/contract.md §5), replies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from relay.core import transitions
from relay.core.commands import Action, Requester
from relay.core.events import EventType
from relay.core.plans import Plan, ReplyKind
from relay.core.records import AWAITED, RequestRecord, RequestState
from relay.glider import Operation

T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
LATER = T0 + timedelta(seconds=3, milliseconds=120)
ALICE = Requester(team_id="T1", user_id="U1", user_name="alice", channel_id="C1")


def record(action: Action = Action.REBALANCE, **changes: Any) -> RequestRecord:
    base = RequestRecord(
        request_id="req_01",
        action=action,
        portfolio_id="pf_1",
        state=RequestState.QUEUED,
        requested_by=ALICE,
        accepted_at=T0,
        updated_at=T0,
        response_url="https://hooks.slack.test/r/1",
    )
    return base.model_copy(update=changes)


def tracked(**changes: Any) -> RequestRecord:
    fields: dict[str, Any] = {
        "state": RequestState.SUBMITTED,
        "operation_id": "rebalance:pf_1:x",
        "operation_state": "accepted",
        "submitted_at": T0,
    }
    return record(**{**fields, **changes})


def operation(state: str, error: str | None = None) -> Operation:
    return Operation.model_validate(
        {
            "operationId": "rebalance:pf_1:x",
            "portfolioId": "pf_1",
            "kind": "rebalance",
            "state": state,
            "finishedAt": "2026-11-22T12:00:03.100Z" if state in {"completed", "failed"} else None,
            "error": error,
        }
    )


def body(plan: Plan) -> dict[str, Any]:
    assert plan.event is not None
    payload: dict[str, Any] = json.loads(plan.event.body())
    return payload


def test_submitted_records_operation_and_schedules_first_poll() -> None:
    """A 202 moves queued -> submitted, emits rebalance.submitted, schedules the first poll."""
    plan = transitions.submitted(record(), LATER, "rebalance:pf_1:x", T0, T0 + timedelta(seconds=2))
    assert plan.from_states == (RequestState.QUEUED,)
    assert plan.set_fields["state"] == "submitted"
    assert plan.set_fields["operation_id"] == "rebalance:pf_1:x"
    assert plan.poll is not None
    assert (plan.poll.op, plan.poll.at_ms) == ("schedule", int(T0.timestamp() * 1000) + 2000)
    payload = body(plan)
    assert payload["type"] == "rebalance.submitted"
    assert payload["data"]["operationId"] == "rebalance:pf_1:x"
    assert payload["data"]["submittedAt"] == "2026-11-22T12:00:00.000Z"
    assert plan.reply is None
    assert not plan.release


def test_completed_operation_matches_the_spec_example() -> None:
    """A completed operation gives exactly the docs/contract.md §5.2 body; frees the portfolio."""
    plan = transitions.finished(tracked(), LATER, operation("completed"))
    assert body(plan) == {
        "type": "rebalance.completed",
        "timestamp": "2026-11-22T12:00:03.120Z",
        "data": {
            "requestId": "req_01",
            "portfolioId": "pf_1",
            "operationId": "rebalance:pf_1:x",
            "state": "completed",
            "submittedAt": "2026-11-22T12:00:00.000Z",
            "finishedAt": "2026-11-22T12:00:03.100Z",
            "requestedBy": {"source": "slack", "teamId": "T1", "userId": "U1", "userName": "alice"},
            "error": None,
        },
    }
    assert plan.from_states == (RequestState.SUBMITTED, RequestState.AWAITING_USER)
    assert plan.poll is not None
    assert plan.poll.op == "remove"
    assert plan.release
    assert plan.reply is ReplyKind.FINAL


def test_failed_operation_carries_gliders_reason() -> None:
    """A failed operation's event has error {code, message} with Glider's text."""
    plan = transitions.finished(tracked(), LATER, operation("failed", "slippage too high"))
    payload = body(plan)
    assert payload["type"] == "rebalance.failed"
    assert payload["data"]["error"] == {"code": "operation_failed", "message": "slippage too high"}
    assert plan.set_fields["error_message"] == "slippage too high"


def test_cancelled_operation_keeps_reason_in_record_not_event() -> None:
    """Cancelled: null event error (docs/contract.md §5.2); the record keeps Glider's text."""
    plan = transitions.finished(tracked(), LATER, operation("cancelled", "user declined"))
    payload = body(plan)
    assert payload["type"] == "rebalance.cancelled"
    assert payload["data"]["error"] is None
    assert plan.set_fields["state"] == "cancelled"
    assert plan.set_fields["error_message"] == "user declined"


def test_cooldown_rejection_carries_retry_time() -> None:
    """A cooldown 429 is rebalance.rejected with error and retryAt."""
    retry_at = T0 + timedelta(seconds=30)
    plan = transitions.rejected(record(), LATER, "cooldown", "try later", retry_at)
    data = body(plan)["data"]
    assert body(plan)["type"] == "rebalance.rejected"
    assert data["state"] == "rejected"
    assert data["error"] == {"code": "cooldown", "message": "try later"}
    assert data["retryAt"] == "2026-11-22T12:00:30.000Z"
    assert plan.release
    assert plan.reply is ReplyKind.FINAL


def test_rejected_pause_replies_without_a_webhook_event() -> None:
    """A refused pause has no event (docs/contract.md §5.1): only the requester hears of it."""
    plan = transitions.rejected(record(Action.PAUSE), LATER, "API_200", "not found")
    assert plan.event is None
    assert plan.reply is ReplyKind.FINAL
    assert plan.set_fields["state"] == "rejected"


def test_pause_and_resume_are_final_at_once() -> None:
    """Confirmed stop/start become portfolio.paused / portfolio.resumed."""
    paused = transitions.schedule_changed(record(Action.PAUSE), LATER)
    resumed = transitions.schedule_changed(record(Action.RESUME), LATER)
    assert body(paused)["type"] == EventType.PAUSED.value
    assert body(paused)["data"]["state"] == "paused"
    assert body(resumed)["type"] == EventType.RESUMED.value
    assert resumed.set_fields["state"] == "resumed"


def test_awaiting_user_is_announced_once_and_polling_continues() -> None:
    """awaiting_user: event + reply guarded by a once-flag; the poll is rescheduled."""
    plan = transitions.progressed(tracked(), LATER, operation("awaiting_user"), LATER)
    assert body(plan)["type"] == "rebalance.awaiting_user"
    assert plan.once == AWAITED
    assert plan.reply is ReplyKind.AWAITING_USER
    assert plan.poll is not None
    assert plan.poll.op == "reschedule"
    assert plan.set_fields["state"] == "awaiting_user"


def test_running_again_writes_nothing_but_the_next_poll() -> None:
    """An unchanged state changes no field; only the due time moves."""
    same = tracked(operation_state="running")
    plan = transitions.progressed(same, LATER, operation("running"), LATER)
    assert plan.set_fields == {}
    assert plan.event is None
    assert plan.poll is not None
    assert plan.poll.at_ms == int(LATER.timestamp() * 1000)


def test_stuck_reports_failed_with_code_stuck() -> None:
    """Past the deadline: state stuck, event rebalance.failed with error code stuck."""
    plan = transitions.stuck(tracked(operation_state="running"), LATER, timedelta(hours=6))
    payload = body(plan)
    assert payload["type"] == "rebalance.failed"
    assert payload["data"]["state"] == "stuck"
    assert payload["data"]["error"]["code"] == "stuck"
    assert "6 h" in payload["data"]["error"]["message"]
    assert plan.release


def test_unconfirmed_completion_has_no_operation_id() -> None:
    """After a crash mid-POST and a rebalance completed since: completed, operation unknown."""
    plan = transitions.completed_unconfirmed(record(), LATER, T0 + timedelta(seconds=1))
    data = body(plan)["data"]
    assert data["state"] == "completed"
    assert data["operationId"] is None
    assert data["finishedAt"] == "2026-11-22T12:00:01.000Z"


def test_failed_clears_nothing_it_should_keep() -> None:
    """A failure writes its code and message and removes no field of the record."""
    plan = transitions.failed(record(), LATER, "server_error", "502 from Glider")
    assert plan.delete_fields == ()
    assert plan.set_fields["error_code"] == "server_error"
    assert body(plan)["data"]["error"] == {"code": "server_error", "message": "502 from Glider"}
