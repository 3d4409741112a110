"""Glider v2 payloads as pydantic models, liberal in what they accept.

Unknown fields are ignored, the older field names of docs/glider-api.md §6 are read
as well as the newest, and an operation state or schedule status that Glider
adds later parses as ``UNKNOWN`` (non-terminal, so a poller keeps polling).
Attributes are snake_case; the wire names are camelCase aliases.

Liberal in shape, strict in range: every time is made an aware UTC ``datetime``
(one without an offset is read as UTC) and every amount or count is bounded, so
nothing past this module can fail, hang or run out of memory on Glider's numbers.
A value out of range fails validation, which the client raises as MalformedResponse.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from relay.core.bounds import (
    ERROR_MESSAGE_CHARS,
    NAME_CHARS,
    OPERATION_ID_CHARS,
    PORTFOLIO_ID_CHARS,
)
from relay.glider.errors import upstream_text

# Words Glider chose (names, labels, an operation's error) are redacted and cut on
# the way in, like its error messages (relay.glider.errors.upstream_text).


def _name(value: str) -> str:
    return upstream_text(value, NAME_CHARS) or ""


def _long_text(value: str) -> str:
    return upstream_text(value, ERROR_MESSAGE_CHARS) or ""


Name = Annotated[str, AfterValidator(_name)]
LongText = Annotated[str, AfterValidator(_long_text)]


def _utc(value: datetime) -> datetime:
    # Glider documents UTC (docs/glider-api.md §2.7) but an answer may leave the offset out;
    # a naive time would break every comparison with the relay's aware clock.
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        return aware.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 lies before datetime.min in UTC
        raise ValueError("time is out of range") from None


# Every Glider time: aware, in UTC, and representable (so formatting it cannot fail).
GliderTime = Annotated[datetime, AfterValidator(_utc)]

# Amounts are bounded in size and precision: a Decimal such as 1E+100000000 is valid JSON
# and a valid number, but formatting it (``:,.2f``) would build a string of 100 million
# characters. Real amounts, down to a token's 18 decimals, fit with room to spare.
AMOUNT_MAX_ADJUSTED = 30  # below 1e31 in magnitude
AMOUNT_MIN_EXPONENT = -40  # at most 40 digits after the point
# Counts (milliseconds, versions) beyond JSON's safe integers are not real counts.
MAX_COUNT = 2**53 - 1
# A wait (Retry-After, retryAfter) longer than this is read as no wait given, like an
# infinite one (docs/glider-api.md §7.3): the relay adds it to a datetime, which overflows
# for absurd values, and no believable cooldown is that long.
MAX_WAIT_S = 7 * 24 * 3600.0


def _amount(value: Decimal) -> Decimal:
    exponent = value.as_tuple().exponent
    # pydantic refuses NaN and the infinities already; their exponent is a letter.
    if not isinstance(exponent, int):
        raise ValueError("amount is not a finite number")
    if value.adjusted() > AMOUNT_MAX_ADJUSTED or exponent < AMOUNT_MIN_EXPONENT:
        raise ValueError("amount is out of range")
    return value


def _decimal(value: object) -> object:
    # Amounts are decimal strings (CONTRACT.md 1.8); a number is read as its text.
    return str(value) if isinstance(value, int | float) else value


Amount = Annotated[Decimal, BeforeValidator(_decimal), AfterValidator(_amount)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
# Ids Glider names: one longer than these is no id (MalformedResponse), never cut, since
# a cut id would name another portfolio or operation.
OperationId = Annotated[str, Field(min_length=1, max_length=OPERATION_ID_CHARS)]
PortfolioId = Annotated[str, Field(min_length=1, max_length=PORTFOLIO_ID_CHARS)]


def usable_wait(value: float | None) -> float | None:
    """A wait Glider gave, in seconds: None when absent, NaN, infinite or absurd; 0 if negative."""
    if value is None or not math.isfinite(value) or value > MAX_WAIT_S:
        return None
    return max(0.0, value)


class GliderModel(BaseModel):
    """Base of every Glider payload: camelCase on the wire, unknown fields ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel)


class OperationState(StrEnum):
    ACCEPTED = "accepted"
    RUNNING = "running"
    RETRYING = "retrying"
    AWAITING_USER = "awaiting_user"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # A state this client does not know yet: treated as still in progress.
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """Glider says: stop polling once you see one of these."""
        return self in _TERMINAL

    @classmethod
    def parse(cls, value: object) -> OperationState:
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            return cls.UNKNOWN


_TERMINAL = frozenset({OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED})


class ScheduleStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: object) -> ScheduleStatus:
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            return cls.UNKNOWN


class ErrorBody(GliderModel):
    code: str
    message: str = ""
    details: Any = None


class ErrorEnvelope(GliderModel):
    """``{"success": false, "error": {"code", "message", "details"?}}``."""

    success: bool
    error: ErrorBody


class RateLimitBody(GliderModel):
    """The per-IP limiter's flat 429 body (not the v2 envelope)."""

    error: str = "Too Many Requests"
    message: str = ""
    retry_after: float | None = None
    correlation_id: str | None = None
    request_id: str | None = None

    @field_validator("retry_after")
    @classmethod
    def _usable_wait(cls, value: float | None) -> float | None:
        # As for the Retry-After header.
        return usable_wait(value)


class RebalanceAccepted(GliderModel):
    """202 of ``POST /v2/portfolios/{id}/rebalance``; the same id while one is in flight."""

    operation_id: OperationId
    submitted_at: GliderTime


class Operation(GliderModel):
    """``GET /v2/portfolios/{id}/operations/{operationId}``."""

    operation_id: OperationId
    portfolio_id: PortfolioId
    kind: Name | None = None
    state: OperationState
    state_raw: Name = Field(description="the state as Glider sent it (cut to NAME_CHARS)")
    created_at: GliderTime | None = None
    updated_at: GliderTime | None = None
    finished_at: GliderTime | None = None
    error: LongText | None = None

    @model_validator(mode="before")
    @classmethod
    def _keep_raw_state(cls, data: Any) -> Any:
        if isinstance(data, dict) and "state" in data:
            return {**data, "stateRaw": str(data["state"])}
        return data

    @field_validator("state", mode="before")
    @classmethod
    def _known_state(cls, value: object) -> OperationState:
        return OperationState.parse(value)

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal


class SmartAccount(GliderModel):
    account_id: str
    deposit_account_id: str | None = None


class Schedule(GliderModel):
    status: ScheduleStatus
    frequency: Name | None = None
    interval_ms: Count | None = None
    next_due_at: GliderTime | None = None
    last_rebalance_at: GliderTime | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _known_status(cls, value: object) -> ScheduleStatus:
        return ScheduleStatus.parse(value)


class PortfolioDetail(GliderModel):
    """PortfolioDetail in the newest shape or the older one (``userAccountId``, ...)."""

    portfolio_id: PortfolioId
    portfolio_name: Name | None = None
    owner_account_id: str | None = Field(
        default=None, validation_alias=AliasChoices("ownerAccountId", "userAccountId")
    )
    strategy_id: str | None = None
    strategy_name: Name | None = None
    strategy_description: LongText | None = None
    smart_accounts: list[SmartAccount] = Field(
        default_factory=list, validation_alias=AliasChoices("smartAccounts", "vaultAccountIds")
    )
    schedule: Schedule | None = None
    created_at: GliderTime | None = None
    updated_at: GliderTime | None = None
    strategy_version: Count | None = None
    # Only in the older shape.
    is_mirrored: bool | None = None
    is_pinned: bool | None = None
    schedule_id: str | int | None = None

    @field_validator("smart_accounts", mode="before")
    @classmethod
    def _accounts_from_ids(cls, value: Any) -> Any:
        # The older `vaultAccountIds` is a list of bare CAIP-10 strings.
        if isinstance(value, list):
            return [{"accountId": v} if isinstance(v, str) else v for v in value]
        return value


class Whoami(GliderModel):
    """``GET /v2/whoami``: the key's tenant and scopes."""

    tenant_name: str | None = None
    tenant_email: str | None = Field(
        default=None, validation_alias=AliasChoices("tenantEmail", "email")
    )
    api_key_id: str | None = None
    scopes: list[str] = Field(default_factory=list)


# A portfolio holds a few assets; a longer list is cut, not trusted whole (bounded input).
MAX_ASSETS = 200
MAX_WARNINGS = 50
MAX_PAGE = 200


class Asset(GliderModel):
    """One line of ``GET /v2/portfolios/{id}/positions``: a balance and what it is worth."""

    asset_id: str | None = None
    smart_account_id: str | None = Field(
        default=None, validation_alias=AliasChoices("smartAccountId", "vaultAccountId")
    )
    symbol: Name | None = None
    balance: Amount | None = None
    price_usd: Amount | None = None
    value_usd: Amount | None = None


class Positions(GliderModel):
    """``GET /v2/portfolios/{id}/positions`` (CONTRACT.md 3.7); ``largest()`` by USD value."""

    portfolio_id: PortfolioId | None = None
    total_value_usd: Amount | None = None
    fetched_at: GliderTime | None = None
    assets: list[Asset] = Field(default_factory=list)
    warnings: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("assets", "warnings", mode="before")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        return value[:MAX_ASSETS] if isinstance(value, list) else value

    def largest(self, count: int) -> list[Asset]:
        return sorted(self.assets, key=lambda a: a.value_usd or Decimal(0), reverse=True)[:count]


class PortfolioPage(GliderModel):
    """One page of ``GET /v2/portfolios``: the portfolios, and the cursor of the next page."""

    portfolios: list[PortfolioDetail] = Field(default_factory=list, max_length=MAX_PAGE)
    next_cursor: str | None = Field(default=None, max_length=2048)
