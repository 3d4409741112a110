"""Glider's portfolio list for the App Home and ``/rebalance list``: cached, bounded, safe.

:meth:`Lister.listing` reads the list from the short Redis cache (relay/store/listing.py)
or walks ``GET /v2/portfolios`` page by page (under the client's shared rate budget) to
at most ``MAX_LISTED`` rows, within :data:`LIST_BUDGET_S`. Concurrent callers in one
process share one walk. It never raises for Glider's or Redis's faults: it returns
the note the view shows instead.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.status import GLIDER_UNSET, STORE_DOWN, glider_note
from relay.core.listing import GLIDER_PAGE, MAX_LISTED, Listing, PortfolioRow
from relay.core.records import RequestRecord
from relay.glider.client import GliderClient
from relay.glider.errors import GliderError, NotFound, upstream_text
from relay.store.listing import cache_listing, cached_listing
from relay.store.requests import RequestStore

log = logging.getLogger(__name__)

LIST_BUDGET_S = 10.0  # the whole walk of Glider's list
STORE_BUDGET_S = 1.0  # each Redis read (cache, records)


async def walk(glider: GliderClient) -> Listing:
    """Glider's list, newest first, to at most ``MAX_LISTED`` rows; raises Glider's errors."""
    rows: list[PortfolioRow] = []
    cursor: str | None = None
    while True:
        page = await glider.list_portfolios(limit=GLIDER_PAGE, cursor=cursor)
        rows += [PortfolioRow.of(p) for p in page.portfolios]
        cursor = page.next_cursor
        if cursor is None or not page.portfolios:
            return Listing(rows=tuple(rows[:MAX_LISTED]), cut=len(rows) > MAX_LISTED)
        if len(rows) >= MAX_LISTED:
            return Listing(rows=tuple(rows[:MAX_LISTED]), cut=True)


@dataclass
class Lister:
    """The portfolio list of one web process: Redis cache first, one Glider walk at a time."""

    redis: aioredis.Redis
    glider: GliderClient | None
    _walking: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def listing(self) -> tuple[Listing | None, str | None]:
        """The list, or None and why not (for the user: no secret, no raw body)."""
        if self.glider is None:
            return None, GLIDER_UNSET
        cached = await self._cached()
        if cached is not None:
            return cached, None
        async with self._walking:
            cached = await self._cached()  # another caller may have just walked it
            if cached is not None:
                return cached, None
            try:
                async with asyncio.timeout(LIST_BUDGET_S):
                    listing = await walk(self.glider)
            except (GliderError, TimeoutError, RedisError) as exc:
                error = upstream_text(str(exc), 300)  # scrubbed before the cut
                log.warning("portfolio list unavailable", extra={"error": error})
                return None, _note(exc)
            await self._keep(listing)
            return listing, None

    async def latest(self, portfolio_ids: list[str]) -> tuple[dict[str, RequestRecord], str | None]:
        """The latest tracked request of each portfolio, or an empty map and why."""
        try:
            async with asyncio.timeout(STORE_BUDGET_S):
                return await RequestStore(self.redis).latest_many(portfolio_ids), None
        except (RedisError, TimeoutError):
            log.warning("portfolio list: tracked requests unavailable")
            return {}, STORE_DOWN

    async def _cached(self) -> Listing | None:
        try:
            async with asyncio.timeout(STORE_BUDGET_S):
                return await cached_listing(self.redis)
        except (RedisError, TimeoutError):
            return None  # no cache: Glider answers (under its own budget)

    async def _keep(self, listing: Listing) -> None:
        try:
            async with asyncio.timeout(STORE_BUDGET_S):
                await cache_listing(self.redis, listing)
        except (RedisError, TimeoutError):
            log.info("portfolio list not cached: the store did not answer")


def _note(exc: GliderError | TimeoutError | RedisError) -> str:
    if isinstance(exc, TimeoutError):
        return "Glider did not list the portfolios in time; try again in a minute."
    if isinstance(exc, NotFound):
        return "Glider answered 404 to the portfolio list (GLIDER_API_URL may be wrong)."
    return glider_note("", exc)
