"""The preview of ``/rebalance <id>`` (docs/contract.md §8): facts from Glider and the store.

Glider's portfolio and positions and the store's in-flight and cooldown facts are
fetched at once; whatever is not there in time is named as missing rather than
holding the ack. The pending confirmation is stored before the preview is shown,
so every button shown has a token behind it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.confirm_messages import LARGEST, PreviewFacts
from bot.status import GLIDER_UNSET, STORE_DOWN, glider_note
from relay.core.records import RequestRecord
from relay.glider.client import GliderClient
from relay.glider.errors import GliderError, upstream_text
from relay.glider.models import Asset, PortfolioDetail
from relay.store import keys
from relay.store.connection import text
from relay.store.requests import RequestStore

log = logging.getLogger(__name__)
T = TypeVar("T")

GLIDER_BUDGET_S = 20.0  # a late preview gives up on Glider after this
STORE_BUDGET_S = 1.0


async def _glider_facts(
    glider: GliderClient | None, portfolio_id: str
) -> tuple[PortfolioDetail | None, Decimal | None, list[Asset], list[str]]:
    if glider is None:
        return None, None, [], [GLIDER_UNSET]
    got_detail, positions = await asyncio.gather(
        _bounded(glider.get_portfolio(portfolio_id)),
        _bounded(glider.get_positions(portfolio_id)),
    )
    notes = []
    detail = None
    if isinstance(got_detail, BaseException):
        notes.append(glider_note(portfolio_id, got_detail))
    else:
        detail = got_detail
    if isinstance(positions, BaseException):
        if not notes:
            notes.append("Positions are unavailable: " + glider_note(portfolio_id, positions))
        return detail, None, [], notes
    return detail, positions.total_value_usd, positions.largest(LARGEST), notes


async def _bounded(work: Awaitable[T]) -> T | GliderError | TimeoutError | RedisError:
    """The answer, or the error that stands in for it (logged, never raised)."""
    try:
        async with asyncio.timeout(GLIDER_BUDGET_S):
            return await work
    except (GliderError, TimeoutError, RedisError) as exc:
        # Scrubbed before the cut, like all outside text (relay/glider/errors.py).
        log.info("preview: Glider did not answer", extra={"error": upstream_text(str(exc), 300)})
        return exc


async def _store_facts(
    redis: aioredis.Redis, portfolio_id: str, now: datetime
) -> tuple[RequestRecord | None, datetime | None, list[str]]:
    """The rebalance in flight, and a cooldown Glider reported for the latest one."""
    try:
        async with asyncio.timeout(STORE_BUDGET_S):
            current = await redis.get(keys.portfolio_inflight(portfolio_id))
            in_flight = await RequestStore(redis).get(text(current)) if current else None
            latest = await RequestStore(redis).latest(portfolio_id)
    except (RedisError, TimeoutError):
        return None, None, [STORE_DOWN]
    cooldown = None
    if latest is not None and latest.retry_at is not None and latest.retry_at > now:
        cooldown = latest.retry_at
    return in_flight, cooldown, []


async def gather_facts(
    portfolio_id: str, *, redis: aioredis.Redis, glider: GliderClient | None
) -> PreviewFacts:
    """Everything the preview shows; missing parts are named in ``notes``."""
    now = datetime.now(UTC)
    (detail, total, largest, notes), (in_flight, cooldown, store_notes) = await asyncio.gather(
        _glider_facts(glider, portfolio_id), _store_facts(redis, portfolio_id, now)
    )
    return PreviewFacts(
        portfolio_id=portfolio_id,
        now=now,
        portfolio=detail,
        total_value_usd=total,
        largest=tuple(largest),
        notes=tuple(notes + store_notes),
        in_flight=in_flight,
        cooldown_until=cooldown,
    )
