"""The request record's Redis hash form."""

from __future__ import annotations

from datetime import UTC, datetime

from relay.core.commands import Action, Requester
from relay.core.records import RequestRecord, RequestState


def test_hash_round_trip_keeps_every_field() -> None:
    """to_hash then from_hash (bytes, as Redis answers) gives the same record."""
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    record = RequestRecord(
        request_id="req_1",
        action=Action.REBALANCE,
        portfolio_id="pf_1",
        state=RequestState.SUBMITTED,
        requested_by=Requester(user_id="U1", user_name="a&b"),
        accepted_at=now,
        updated_at=now,
        operation_id="rebalance:pf_1:x%3Ay",
        submitted_at=now,
    )
    raw = {k.encode(): v.encode() for k, v in record.to_hash().items()}
    assert RequestRecord.from_hash(raw, "req_1") == record
    assert "finished_at" not in record.to_hash()


def test_final_states() -> None:
    """Only queued, submitted and awaiting_user are still open."""
    open_states = {s for s in RequestState if not s.is_final}
    assert open_states == {RequestState.QUEUED, RequestState.SUBMITTED, RequestState.AWAITING_USER}
