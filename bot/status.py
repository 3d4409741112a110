"""``/rebalance status``: Glider's view of a portfolio plus the latest request we track.

Glider may be slow. :func:`answer_status` answers in the ack when the lookup
finishes within ``SLOW_GLIDER_S``; otherwise the ack says "looking it up" and
the status follows through the command's ``response_url``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot import messages
from bot.background import Background
from bot.messages import Reply, StatusView
from relay.core.clock import utc_now
from relay.core.records import RequestRecord
from relay.glider.client import GliderClient
from relay.glider.errors import Forbidden, GliderError, NotFound, Unauthorized
from relay.glider.models import PortfolioDetail
from relay.store.requests import RequestStore

log = logging.getLogger(__name__)

SLOW_GLIDER_S = 2.0  # longer than this and the ack says "looking it up"
LOOKUP_BUDGET_S = 20.0  # a late answer gives up after this
STORE_BUDGET_S = 1.0
GLIDER_UNSET = "Glider details are unavailable: GLIDER_API_KEY is not set on the web process."
STORE_DOWN = "Tracked requests are unavailable: the relay's store did not answer."

# Sends a reply after the ack (through the command's response_url).
LateReply = Callable[[Reply], Awaitable[None]]


def glider_note(portfolio_id: str, exc: GliderError | TimeoutError | RedisError) -> str:
    """Why Glider's details are missing, for the user (no secret, no raw body)."""
    if isinstance(exc, NotFound):
        return f"Glider does not know portfolio {portfolio_id} (or the relay's key cannot see it)."
    if isinstance(exc, Unauthorized | Forbidden):
        return "Glider refused the relay's API key; ask the operator to check GLIDER_API_KEY."
    if isinstance(exc, TimeoutError):
        return "Glider did not answer in time."
    if isinstance(exc, RedisError):  # the shared Glider rate budget lives in Redis
        return "Glider details are unavailable: the relay's store did not answer."
    return f"Glider details are unavailable right now ({exc})."


async def _portfolio(
    glider: GliderClient | None, portfolio_id: str
) -> tuple[PortfolioDetail | None, str | None]:
    if glider is None:
        return None, GLIDER_UNSET
    try:
        async with asyncio.timeout(LOOKUP_BUDGET_S):
            return await glider.get_portfolio(portfolio_id), None
    except (GliderError, TimeoutError, RedisError) as exc:
        log.info(
            "status: no Glider details", extra={"portfolio_id": portfolio_id, "error": str(exc)}
        )
        return None, glider_note(portfolio_id, exc)


async def _record(
    redis: aioredis.Redis, portfolio_id: str
) -> tuple[RequestRecord | None, str | None]:
    try:
        async with asyncio.timeout(STORE_BUDGET_S):
            return await RequestStore(redis).latest(portfolio_id), None
    except (RedisError, TimeoutError):
        log.warning("status: store unavailable", extra={"portfolio_id": portfolio_id})
        return None, STORE_DOWN


async def build_status(
    portfolio_id: str, *, redis: aioredis.Redis, glider: GliderClient | None
) -> Reply:
    """The status reply: Glider's schedule (or why not) and the latest tracked request."""
    (portfolio, note), (record, record_note) = await asyncio.gather(
        _portfolio(glider, portfolio_id), _record(redis, portfolio_id)
    )
    view = StatusView(
        portfolio_id=portfolio_id,
        portfolio=portfolio,
        glider_note=note,
        record=record,
        record_note=record_note,
        now=utc_now(),
    )
    return messages.status(view)


async def answer_status(
    portfolio_id: str,
    *,
    redis: aioredis.Redis,
    glider: GliderClient | None,
    late: LateReply,
    background: Background,
    patience: float = SLOW_GLIDER_S,
) -> Reply:
    """The ack for a status command; after ``patience`` s the status follows via ``late``."""
    lookup = asyncio.ensure_future(build_status(portfolio_id, redis=redis, glider=glider))
    done, _ = await asyncio.wait({lookup}, timeout=patience)
    if lookup in done:
        return lookup.result()
    background.spawn(_reply_late(lookup, late), name=f"status:{portfolio_id}")
    return messages.looking_up(portfolio_id)


async def _reply_late(lookup: asyncio.Future[Reply], late: LateReply) -> None:
    await late(await lookup)
