"""The simulator's read-only views beyond one portfolio: its positions, and the list.

``GET /v2/portfolios/{id}/positions`` (CONTRACT.md 3.7) and ``GET /v2/portfolios``
(3.5: ``createdAt`` descending, ``status`` filter excluding unscheduled portfolios,
an opaque keyset cursor). Pure functions of :mod:`relay.sim.state` views.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from relay.sim.config import ScheduleStatus, SimPortfolio

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
USDC = "eip155:8453/erc20:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913"
WETH = "eip155:8453/erc20:0x4200000000000000000000000000000000000006"
CBBTC = "eip155:8453/erc20:0xcbb7c0000ab88b473b1f5afd9ef808440eed33bf"
# symbol, asset id, decimals, price: what every simulated portfolio holds, in amounts
# drawn from its id so that each one shows a different, stable picture.
_ASSETS = (
    ("USDC", USDC, 6, Decimal("1.000000")),
    ("WETH", WETH, 18, Decimal("3150.250000")),
    ("cbBTC", CBBTC, 8, Decimal("97250.000000")),
)
_SIX = Decimal("0.000001")


class BadListQuery(ValueError):
    """A list query Glider answers with 400 (bad status, limit or cursor)."""


@dataclass(frozen=True)
class Position:
    symbol: str
    asset_id: str
    smart_account_id: str
    decimals: int
    balance: Decimal
    price_usd: Decimal

    @property
    def value_usd(self) -> Decimal:
        return (self.balance * self.price_usd).quantize(_SIX)


def positions(spec: SimPortfolio) -> list[Position]:
    """The portfolio's balances: stable per portfolio id, largest value first."""
    seed = hashlib.sha256(spec.id.encode()).digest()
    account = spec.smart_accounts[0] if spec.smart_accounts else ""
    held = []
    for index, (symbol, asset_id, decimals, price) in enumerate(_ASSETS):
        units = Decimal(int.from_bytes(seed[index * 4 : index * 4 + 4], "big") % 100_000)
        balance = (units * Decimal(10) ** -(index + 1) * Decimal(5 ** (2 - index))).quantize(_SIX)
        held.append(Position(symbol, asset_id, account, decimals, balance, price))
    return sorted(held, key=lambda p: p.value_usd, reverse=True)


@dataclass(frozen=True)
class ListQuery:
    status: ScheduleStatus | None
    limit: int
    after: tuple[str, str] | None  # (createdAt ISO, portfolio id) of the last item seen


def parse_list_query(query: dict[str, str]) -> ListQuery:
    """``status``, ``limit`` (1-200, default 50) and ``cursor``, or :class:`BadListQuery`."""
    status = query.get("status")
    if status is not None and status not in ("active", "paused"):
        raise BadListQuery("status must be active or paused")
    raw_limit = query.get("limit", str(DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise BadListQuery(f"limit must be an integer from 1 to {MAX_LIMIT}")
    cursor = query.get("cursor")
    after = decode_cursor(cursor) if cursor is not None else None
    return ListQuery(status, int(raw_limit), after)  # type: ignore[arg-type]


def encode_cursor(created_at: str, portfolio_id: str) -> str:
    raw = json.dumps({"c": created_at, "i": portfolio_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        created, portfolio_id = value["c"], value["i"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadListQuery("cursor is not valid") from None
    if not isinstance(created, str) or not isinstance(portfolio_id, str):
        raise BadListQuery("cursor is not valid")
    return created, portfolio_id


def page_after(
    items: list[tuple[str, str, T]], query: ListQuery
) -> tuple[list[T], tuple[str, str] | None]:
    """One page of ``(createdAt, id, item)`` in Glider's order, and the key of the last one
    when more follow."""
    ordered = sorted(items, key=lambda i: (i[0], i[1]), reverse=True)
    if query.after is not None:
        ordered = [i for i in ordered if (i[0], i[1]) < query.after]
    page = ordered[: query.limit]
    more = len(ordered) > query.limit
    return [i[2] for i in page], ((page[-1][0], page[-1][1]) if more and page else None)
