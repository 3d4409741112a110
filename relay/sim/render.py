"""JSON bodies exactly as Glider v2 shapes them: envelopes, portfolio detail, operations.

The newest documented field names by default; ``legacy=True`` gives the older
snapshot's shape (``userAccountId``, ``vaultAccountIds``, ``isMirrored``...), so the
client is proven against both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from relay.core.clock import iso_ms
from relay.sim.config import SimApiKey
from relay.sim.operations import OperationView
from relay.sim.state import (
    CooldownActive,
    NoSchedule,
    OperationNotFound,
    PortfolioNotFound,
    PortfolioView,
    ScheduleView,
    SimError,
)

JsonObject = dict[str, Any]

COOLDOWN_MESSAGE = "Rebalance for this portfolio finished too recently; see the Retry-After header"


def iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso_ms(moment)


def ok(data: JsonObject) -> JsonObject:
    return {"success": True, "data": data}


def error(code: str, message: str) -> JsonObject:
    return {"success": False, "error": {"code": code, "message": message}}


def sim_error(exc: SimError) -> tuple[int, str, str]:
    """Status, code and message for a refusal of the state machine."""
    if isinstance(exc, PortfolioNotFound):
        # Word for word the same for a missing portfolio and another tenant's.
        return 404, "API_006", f"Portfolio with ID {exc.portfolio_id} not found"
    if isinstance(exc, OperationNotFound):
        return 404, "API_006", f"Operation with ID {exc.operation_id} not found"
    if isinstance(exc, NoSchedule):
        message = f"Portfolio {exc.portfolio_id} has no rebalance schedule to transition"
        return 400, "API_002", message
    if isinstance(exc, CooldownActive):
        return 429, "API_004", COOLDOWN_MESSAGE
    return 500, "API_000", "Internal server error"


def rate_limit_body(retry_after: int, request_id: str, correlation_id: str) -> JsonObject:
    """The per-IP limiter's 429 body: flat, not the v2 envelope (docs/glider-api.md §7.2)."""
    return {
        "error": "Too Many Requests",
        "message": f"Rate limit exceeded. Try again in {retry_after} seconds.",
        "retryAfter": retry_after,
        "correlationId": correlation_id,
        "requestId": request_id,
    }


def schedule(view: ScheduleView) -> JsonObject:
    return {
        "status": view.status,
        "frequency": view.frequency,
        "intervalMs": view.interval_ms,
        "nextDueAt": iso_ms(view.next_due_at),
        "lastRebalanceAt": iso_or_none(view.last_rebalance_at),
    }


def portfolio(view: PortfolioView, *, legacy: bool) -> JsonObject:
    """PortfolioDetail in the newest shape, or the older snapshot's when ``legacy``."""
    spec = view.spec
    body: JsonObject = {"portfolioId": spec.id}
    if legacy:
        body["userAccountId"] = spec.owner_account_id
    else:
        body["portfolioName"] = spec.name
        body["ownerAccountId"] = spec.owner_account_id
    body |= {
        "strategyId": spec.strategy_id,
        "strategyName": spec.strategy_name,
        "strategyDescription": spec.strategy_description,
    }
    if legacy:
        body["vaultAccountIds"] = list(spec.smart_accounts)
    else:
        body["smartAccounts"] = [{"accountId": a} for a in spec.smart_accounts]
    if view.schedule is not None:
        body["schedule"] = schedule(view.schedule)
    body |= {"createdAt": iso_ms(view.created_at), "strategyVersion": spec.strategy_version}
    if legacy:
        body |= {"isMirrored": False, "isPinned": False}
        body["scheduleId"] = None if view.schedule is None else "999"
    body["updatedAt"] = iso_ms(view.updated_at)
    return body


def operation(view: OperationView) -> JsonObject:
    return {
        "operationId": view.operation_id,
        "portfolioId": view.portfolio_id,
        "kind": view.kind,
        "state": view.state,
        "createdAt": iso_ms(view.created_at),
        "updatedAt": iso_ms(view.updated_at),
        "finishedAt": iso_or_none(view.finished_at),
        "error": view.error,
    }


def rebalance_accepted(operation_id: str, submitted_at: datetime) -> JsonObject:
    return {"operationId": operation_id, "submittedAt": iso_ms(submitted_at)}


def whoami(key: SimApiKey, *, legacy: bool) -> JsonObject:
    email_field = "email" if legacy else "tenantEmail"
    return {
        "tenantName": key.tenant,
        email_field: f"ops@{key.tenant}.example",
        "apiKeyId": key.key_id,
        "scopes": sorted(key.scopes),
    }
