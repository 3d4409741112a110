"""Glider payload models: both field generations, unknown extras and unknown states."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from relay.glider.models import (
    ErrorEnvelope,
    Operation,
    OperationState,
    PortfolioDetail,
    RateLimitBody,
    RebalanceAccepted,
    ScheduleStatus,
    Whoami,
)

SCHEDULE = {
    "status": "active",
    "frequency": "daily",
    "intervalMs": 86400000,
    "nextDueAt": "2026-04-16T12:00:00.000Z",
    "lastRebalanceAt": "2026-04-15T12:00:00.000Z",
}

# docs/glider-api.md §3.1, newest field names.
NEWEST: dict[str, Any] = {
    "portfolioId": "pf_01JWZEE2MF30KVRMRX53N88VA4",
    "portfolioName": "Alice Conservative Yield",
    "ownerAccountId": "eip155:0:0xabcdef0000000000000000000000000000000001",
    "strategyId": "01JWZEE2MF30KVRMRX53N88VA4",
    "strategyName": "Conservative Yield",
    "strategyDescription": "Multi-chain balanced allocation strategy",
    "smartAccounts": [{"accountId": "eip155:8453:0xe3a2d1f49aee887e42655b56371d4d76bbf58058"}],
    "schedule": SCHEDULE,
    "createdAt": "2026-04-10T08:30:00.000Z",
    "strategyVersion": 4,
    "updatedAt": "2026-04-15T12:00:00.000Z",
}

# Seed page 002 (start portfolio), the older snapshot.
LEGACY: dict[str, Any] = {
    "portfolioId": "pf_01JWZEE2MF30KVRMRX53N88VA4",
    "userAccountId": "eip155:0:0xabcdef0000000000000000000000000000000001",
    "strategyId": "01JWZEE2MF30KVRMRX53N88VA4",
    "strategyName": "Conservative Yield",
    "strategyDescription": "Multi-chain balanced allocation strategy",
    "vaultAccountIds": ["eip155:8453:0xe3a2d1f49aee887e42655b56371d4d76bbf58058"],
    "schedule": SCHEDULE,
    "createdAt": "2026-04-10T08:30:00.000Z",
    "strategyVersion": 4,
    "isMirrored": True,
    "isPinned": False,
    "scheduleId": "999",
    "updatedAt": "2026-04-16T12:00:00.000Z",
}

# docs/glider-api.md §4.1.
OPERATION: dict[str, Any] = {
    "operationId": "op_01J_ABCDEF",
    "portfolioId": "01JWZEE2MF30KVRMRX53N88VA4",
    "kind": "withdraw",
    "state": "running",
    "createdAt": "2026-04-17T12:05:00.000Z",
    "updatedAt": "2026-04-17T12:05:10.000Z",
    "finishedAt": None,
    "error": None,
}


def test_portfolio_newest_shape() -> None:
    """The newest field names parse into the model's attributes."""
    detail = PortfolioDetail.model_validate(NEWEST)
    assert detail.portfolio_name == "Alice Conservative Yield"
    assert detail.owner_account_id == NEWEST["ownerAccountId"]
    assert [a.account_id for a in detail.smart_accounts] == [
        NEWEST["smartAccounts"][0]["accountId"]
    ]
    assert detail.schedule is not None
    assert detail.schedule.status is ScheduleStatus.ACTIVE
    assert detail.schedule.interval_ms == 86_400_000
    assert detail.schedule.last_rebalance_at == datetime(2026, 4, 15, 12, tzinfo=UTC)
    assert detail.strategy_version == 4


def test_portfolio_legacy_shape_maps_to_the_same_attributes() -> None:
    """userAccountId and vaultAccountIds fill owner_account_id and smart_accounts."""
    old = PortfolioDetail.model_validate(LEGACY)
    new = PortfolioDetail.model_validate(NEWEST)
    assert old.owner_account_id == new.owner_account_id
    assert old.smart_accounts == new.smart_accounts
    assert old.portfolio_name is None
    assert (old.is_mirrored, old.is_pinned, old.schedule_id) == (True, False, "999")


def test_unknown_fields_are_ignored() -> None:
    """Fields Glider adds later never break parsing."""
    detail = PortfolioDetail.model_validate(
        {
            **NEWEST,
            "riskScore": 7,
            "smartAccounts": [{"accountId": "eip155:1:0x1", "depositAccountId": "x", "new": 1}],
            "schedule": {**SCHEDULE, "timezone": "UTC"},
        }
    )
    assert detail.smart_accounts[0].deposit_account_id == "x"
    operation = Operation.model_validate({**OPERATION, "progress": 0.5, "result": {"tx": "0x"}})
    assert operation.state is OperationState.RUNNING


def test_schedule_is_optional_and_unknown_status_is_kept_apart() -> None:
    """A portfolio without a schedule parses; an unheard-of status is UNKNOWN."""
    bare = {k: v for k, v in NEWEST.items() if k != "schedule"}
    assert PortfolioDetail.model_validate(bare).schedule is None
    odd = PortfolioDetail.model_validate({**NEWEST, "schedule": {**SCHEDULE, "status": "archived"}})
    assert odd.schedule is not None
    assert odd.schedule.status is ScheduleStatus.UNKNOWN
    nulls = {**SCHEDULE, "nextDueAt": None, "lastRebalanceAt": None}
    empty = PortfolioDetail.model_validate({**NEWEST, "schedule": nulls})
    assert empty.schedule is not None
    assert empty.schedule.last_rebalance_at is None


def test_operation_fields() -> None:
    """The documented operation parses, timestamps as aware datetimes."""
    operation = Operation.model_validate(OPERATION)
    assert operation.operation_id == "op_01J_ABCDEF"
    assert operation.kind == "withdraw"
    assert operation.updated_at == datetime(2026, 4, 17, 12, 5, 10, tzinfo=UTC)
    assert operation.finished_at is None
    assert not operation.is_terminal


@pytest.mark.parametrize(
    ("state", "terminal"),
    [
        ("accepted", False),
        ("running", False),
        ("retrying", False),
        ("awaiting_user", False),
        ("completed", True),
        ("failed", True),
        ("cancelled", True),
    ],
)
def test_terminal_states(state: str, terminal: bool) -> None:
    """Exactly completed, failed and cancelled are terminal."""
    operation = Operation.model_validate({**OPERATION, "state": state})
    assert operation.state.value == state
    assert operation.is_terminal is terminal


def test_unknown_state_is_non_terminal_and_kept_verbatim() -> None:
    """A state Glider adds later does not crash and keeps the poller polling."""
    operation = Operation.model_validate({**OPERATION, "state": "queued_for_bridge"})
    assert operation.state is OperationState.UNKNOWN
    assert not operation.is_terminal
    assert operation.state_raw == "queued_for_bridge"


def test_failed_operation_error_is_a_string() -> None:
    """The error of a failed operation is Glider's free-form message."""
    operation = Operation.model_validate(
        {**OPERATION, "state": "failed", "finishedAt": OPERATION["updatedAt"], "error": "RPC down"}
    )
    assert operation.error == "RPC down"
    assert operation.finished_at == operation.updated_at


def test_operation_needs_its_identity_and_state() -> None:
    """Without operationId or state the answer is not an operation."""
    for field in ("operationId", "portfolioId", "state"):
        with pytest.raises(ValidationError):
            Operation.model_validate({k: v for k, v in OPERATION.items() if k != field})


def test_rebalance_accepted_from_seed_000() -> None:
    """The 202 body of the trigger page parses."""
    accepted = RebalanceAccepted.model_validate(
        {
            "operationId": "rebalance:pf_01JWZG3KH9P4N5QXJVNK7M3WTV:pf_01JWZG3KH9P4N5QXJVNK7M3WTV"
            "%3Amanual%3Areq_01JWZEE2MF30KVRMRX53N88VA4",
            "submittedAt": "2026-04-17T12:00:00.000Z",
        }
    )
    assert accepted.operation_id.endswith("%3Areq_01JWZEE2MF30KVRMRX53N88VA4")
    assert accepted.submitted_at == datetime(2026, 4, 17, 12, tzinfo=UTC)


def test_error_bodies() -> None:
    """The v2 error envelope and the flat rate-limit body both parse."""
    envelope = ErrorEnvelope.model_validate(
        {"success": False, "error": {"code": "API_400", "message": "bad", "details": ["x"]}}
    )
    assert (envelope.error.code, envelope.error.details) == ("API_400", ["x"])
    flat = RateLimitBody.model_validate(
        {
            "error": "Too Many Requests",
            "message": "Rate limit exceeded. Try again in 42 seconds.",
            "retryAfter": 42,
            "correlationId": "corr_1",
            "requestId": "req_1",
        }
    )
    assert (flat.retry_after, flat.request_id) == (42, "req_1")
    with pytest.raises(ValidationError):
        ErrorEnvelope.model_validate(flat.model_dump(by_alias=True))


def test_whoami_old_and_new_email() -> None:
    """tenantEmail and the older email both fill tenant_email."""
    for field in ("tenantEmail", "email"):
        who = Whoami.model_validate({"tenantName": "t", field: "a@b.c", "scopes": ["x"]})
        assert who.tenant_email == "a@b.c"


def test_models_are_frozen() -> None:
    """Parsed answers cannot be changed by accident."""
    operation = Operation.model_validate(OPERATION)
    with pytest.raises(ValidationError):
        operation.error = "changed"  # type: ignore[misc]
