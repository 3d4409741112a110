"""The approval events and audit entries (docs/contract.md §8), built before the Lua step.

Pure: each function turns a command and who acted into the stored text (event
``(id, type, body)``, audit entry JSON) that ``relay/store/confirmations.py`` hands
to its atomic step.
"""

from __future__ import annotations

from relay.core.audit import AuditAction, AuditActor, new_entry
from relay.core.commands import QueuedCommand, Requester
from relay.core.events import Event, EventData, EventError, EventRequester, EventType

_STATES = {
    EventType.APPROVAL_REQUESTED: "approval_requested",
    EventType.APPROVED: "approved",
    EventType.DECLINED: "declined",
}
_AUDIT = {
    "approved": AuditAction.APPROVAL_APPROVED,
    "rejected": AuditAction.APPROVAL_REJECTED,
    "expired": AuditAction.APPROVAL_EXPIRED,
}


def actor(person: Requester | None) -> AuditActor:
    """The audit actor for a Slack user, or the relay itself (an expiry)."""
    if person is None:
        return AuditActor(source="relay")
    return AuditActor.slack(person.team_id, person.user_id, person.user_name)


def approval_event(
    kind: EventType, command: QueuedCommand, decider: Requester | None = None, code: str = ""
) -> tuple[str, str, str]:
    """``rebalance.approval_requested`` / ``approved`` / ``declined`` as (id, type, body)."""
    data = EventData(
        requestId=command.request_id,
        portfolioId=command.portfolio_id,
        state=_STATES[kind],
        requestedBy=EventRequester.of(command.requested_by),
        error=_error(code) if kind is EventType.DECLINED else None,
        approvedBy=EventRequester.of(decider) if kind is EventType.APPROVED and decider else None,
        declinedBy=EventRequester.of(decider) if kind is EventType.DECLINED and decider else None,
    )
    event = Event(type=kind, data=data)
    return event.id, kind.value, event.body().decode()


def _error(code: str) -> EventError:
    if code == "expired":
        return EventError(code="expired", message="nobody decided before the approval expired")
    return EventError(code="rejected", message="an approver rejected the rebalance")


def requested_audit(command: QueuedCommand) -> str:
    return new_entry(
        AuditAction.APPROVAL_REQUESTED,
        actor(command.requested_by),
        portfolio_id=command.portfolio_id,
        request_id=command.request_id,
        detail="approval requested for a rebalance",
    ).to_json()


def decision_audit(state: str, command: QueuedCommand, decider: Requester | None) -> str:
    return new_entry(
        _AUDIT[state],
        actor(decider),
        portfolio_id=command.portfolio_id,
        request_id=command.request_id,
        detail=f"rebalance requested by {command.requested_by.user_id or 'unknown'}: {state}",
    ).to_json()


def click_audit(choice: str, command: QueuedCommand) -> str:
    """The requester's own click on the preview: confirmed or cancelled."""
    action = (
        AuditAction.REBALANCE_CONFIRMED if choice == "confirm" else AuditAction.REBALANCE_CANCELLED
    )
    return new_entry(
        action,
        actor(command.requested_by),
        portfolio_id=command.portfolio_id,
        request_id=command.request_id,
        detail="preview confirmed" if choice == "confirm" else "preview cancelled, nothing queued",
    ).to_json()
