"""Pure rules for how a request moves on: which states it may leave, what it records,
which event (docs/contract.md §5.1) and which requester reply each move produces.

Each function takes the request record as last read and returns a :class:`Plan`;
:func:`relay.store.outcomes.apply` carries a plan out in one atomic Redis step, and only
if the record is still in one of the plan's ``from_states`` (so two workers that
both act on one request cannot both record an outcome).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from relay.core.clock import to_ms
from relay.core.commands import Action
from relay.core.events import Event, EventData, EventError, EventRequester, EventType
from relay.core.plans import (
    QUEUED,
    STUCK_CODE,
    TRACKED,
    VANISHED_CODE,
    Plan,
    PollChange,
    ReplyKind,
)
from relay.core.records import AWAITED, POST_FIELDS, TRACKED_MS, RequestRecord, RequestState
from relay.glider import Operation, OperationState


def _changes(before: RequestRecord, after: RequestRecord) -> tuple[dict[str, str], tuple[str, ...]]:
    old, new = before.fields(), after.fields()
    changed = {k: v for k, v in new.items() if old.get(k) != v}
    return changed, tuple(k for k in old if k not in new)


def _event(
    record: RequestRecord, kind: EventType, at: datetime, error: EventError | None = None
) -> Event:
    """``kind`` for ``record`` as it is after the move (its state is the event's)."""
    return Event(
        type=kind,
        timestamp=at,
        data=EventData(
            requestId=record.request_id,
            portfolioId=record.portfolio_id,
            operationId=record.operation_id,
            state=record.state.value,
            submittedAt=record.submitted_at,
            finishedAt=record.finished_at,
            requestedBy=EventRequester.of(record.requested_by),
            error=error,
            retryAt=record.retry_at,
        ),
    )


def _plan(
    before: RequestRecord,
    after: RequestRecord,
    from_states: tuple[RequestState, ...],
    *,
    extra_fields: dict[str, str] | None = None,
    drop_fields: tuple[str, ...] = (),
    **extra: Any,
) -> Plan:
    set_fields, delete_fields = _changes(before, after)
    return Plan(
        request_id=before.request_id,
        portfolio_id=before.portfolio_id,
        from_states=from_states,
        set_fields={**set_fields, **(extra_fields or {})},
        delete_fields=delete_fields + drop_fields,
        **extra,
    )


def _end_tracking(record: RequestRecord, after: RequestRecord, event: Event) -> Plan:
    """A tracked operation's final step: stop polling, free the portfolio, tell the requester."""
    return _plan(
        record,
        after,
        TRACKED,
        event=event,
        reply=ReplyKind.FINAL,
        poll=PollChange(op="remove"),
        release=True,
    )


def submitted(
    record: RequestRecord,
    now: datetime,
    operation_id: str,
    submitted_at: datetime,
    first_poll: datetime,
) -> Plan:
    """Glider accepted the rebalance (202): track the operation, poll it first at ``first_poll``."""
    after = record.model_copy(
        update={
            "state": RequestState.SUBMITTED,
            "operation_id": operation_id,
            "operation_state": OperationState.ACCEPTED.value,
            "submitted_at": submitted_at,
            "updated_at": now,
        }
    )
    event = _event(after, EventType.SUBMITTED, now)
    poll = PollChange(op="schedule", at_ms=to_ms(first_poll))
    tracked = {TRACKED_MS: str(to_ms(now))}
    # The POST bookkeeping only matters while queued; tracked records stay small.
    return _plan(
        record,
        after,
        QUEUED,
        event=event,
        poll=poll,
        extra_fields=tracked,
        drop_fields=POST_FIELDS,
    )


def _unsuccessful(
    record: RequestRecord,
    now: datetime,
    state: RequestState,
    error: EventError,
    retry_at: datetime | None = None,
) -> Plan:
    """A queued command ends without an operation: refused or failed, with its reason.
    Only a rebalance has an event for that (docs/contract.md §5.1); every requester gets a reply."""
    after = record.model_copy(
        update={
            "state": state,
            "error_code": error.code,
            "error_message": error.message,
            "retry_at": retry_at,
            "finished_at": now,
            "updated_at": now,
        }
    )
    event = None
    if record.action is Action.REBALANCE:
        kind = EventType.REJECTED if state is RequestState.REJECTED else EventType.FAILED
        event = _event(after, kind, now, error)
    return _plan(record, after, QUEUED, event=event, reply=ReplyKind.FINAL, release=True)


def rejected(
    record: RequestRecord,
    now: datetime,
    code: str,
    message: str,
    retry_at: datetime | None = None,
) -> Plan:
    """Glider refused the command (401/403/404/400, or a cooldown 429 with ``retry_at``)."""
    error = EventError(code=code, message=message)
    return _unsuccessful(record, now, RequestState.REJECTED, error, retry_at)


def failed(record: RequestRecord, now: datetime, code: str, message: str) -> Plan:
    """The command could not be carried out (retries exhausted, or a permanent fault)."""
    error = EventError(code=code, message=message)
    return _unsuccessful(record, now, RequestState.FAILED, error)


def schedule_changed(record: RequestRecord, now: datetime) -> Plan:
    """Glider confirmed a pause (stop) or resume (start): final at once."""
    pause = record.action is Action.PAUSE
    state = RequestState.PAUSED if pause else RequestState.RESUMED
    after = record.model_copy(update={"state": state, "finished_at": now, "updated_at": now})
    kind = EventType.PAUSED if pause else EventType.RESUMED
    event = _event(after, kind, now)
    return _plan(record, after, QUEUED, event=event, reply=ReplyKind.FINAL)


def completed_unconfirmed(record: RequestRecord, now: datetime, completed_at: datetime) -> Plan:
    """A POST may have reached Glider before a crash, and Glider reports a rebalance of the
    portfolio completed since: the portfolio was rebalanced after the request, so it is
    reported completed (its operation id is unknown) rather than risk a second run."""
    after = record.model_copy(
        update={"state": RequestState.COMPLETED, "finished_at": completed_at, "updated_at": now}
    )
    event = _event(after, EventType.COMPLETED, now)
    return _plan(record, after, QUEUED, event=event, reply=ReplyKind.FINAL, release=True)


_FINAL_STATES = {
    OperationState.COMPLETED: (RequestState.COMPLETED, EventType.COMPLETED),
    OperationState.FAILED: (RequestState.FAILED, EventType.FAILED),
    OperationState.CANCELLED: (RequestState.CANCELLED, EventType.CANCELLED),
}


def finished(record: RequestRecord, now: datetime, operation: Operation) -> Plan:
    """The operation reached a terminal state: record it, stop polling, free the portfolio."""
    state, kind = _FINAL_STATES[operation.state]
    code = f"operation_{state.value}" if state is not RequestState.COMPLETED else None
    message = operation.error or (f"Glider reports the operation {state.value}" if code else None)
    after = record.model_copy(
        update={
            "state": state,
            "operation_state": operation.state_raw,
            "finished_at": operation.finished_at or now,
            "error_code": code,
            "error_message": message,
            "updated_at": now,
        }
    )
    # docs/contract.md §5.2: `error` is set on failed (and rejected) only.
    error = EventError(code=code or "", message=message or "") if kind is EventType.FAILED else None
    event = _event(after, kind, now, error)
    return _end_tracking(record, after, event)


def _tracking_failed(
    record: RequestRecord, now: datetime, state: RequestState, code: str, message: str
) -> Plan:
    """Tracking ends without Glider's word: ``rebalance.failed`` with our own error code.

    Only a vanished operation has a known end (now); a stuck one may still be running.
    """
    update: dict[str, object] = {
        "state": state,
        "error_code": code,
        "error_message": message,
        "updated_at": now,
    }
    if state is RequestState.FAILED:
        update["finished_at"] = now
    after = record.model_copy(update=update)
    error = EventError(code=code, message=message)
    event = _event(after, EventType.FAILED, now, error)
    return _end_tracking(record, after, event)


def vanished(record: RequestRecord, now: datetime, message: str) -> Plan:
    """Glider no longer knows the operation (404): it ended in a way we cannot see."""
    return _tracking_failed(record, now, RequestState.FAILED, VANISHED_CODE, message)


def progressed(
    record: RequestRecord, now: datetime, operation: Operation, next_poll: datetime
) -> Plan:
    """Still running: note Glider's state, poll again at ``next_poll``; announce
    ``awaiting_user`` the first time it is seen."""
    waiting = operation.state is OperationState.AWAITING_USER
    state = RequestState.AWAITING_USER if waiting else RequestState.SUBMITTED
    after = record
    if (state, operation.state_raw) != (record.state, record.operation_state):
        after = record.model_copy(
            update={"state": state, "operation_state": operation.state_raw, "updated_at": now}
        )
    poll = PollChange(op="reschedule", at_ms=to_ms(next_poll))
    if not waiting:
        return _plan(record, after, TRACKED, poll=poll)
    event = _event(after, EventType.AWAITING_USER, now)
    return _plan(
        record, after, TRACKED, poll=poll, event=event, once=AWAITED, reply=ReplyKind.AWAITING_USER
    )


def poll_later(record: RequestRecord, next_poll: datetime) -> Plan:
    """Polling failed this time (Glider 5xx, 429, timeout): try again at ``next_poll``."""
    return _plan(record, record, TRACKED, poll=PollChange(op="reschedule", at_ms=to_ms(next_poll)))


def stuck(record: RequestRecord, now: datetime, deadline: timedelta) -> Plan:
    """No terminal state before the deadline: stop polling and report it (event
    ``rebalance.failed`` with state and error code ``stuck``, so on-call hears of it)."""
    hours = deadline.total_seconds() / 3600
    message = (
        f"no final state from Glider after {hours:g} h of polling "
        f"(last state: {record.operation_state or 'unknown'})"
    )
    return _tracking_failed(record, now, RequestState.STUCK, STUCK_CODE, message)
