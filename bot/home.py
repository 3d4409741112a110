"""The App Home tab (docs/contract.md §9): ``app_home_opened`` and the paging buttons.

Bolt acks the event at once (the listener only spawns :meth:`HomeTab.publish`); the
view is built afterwards from Glider's list (bot/listing.py), our records, the
pending approvals and the user's latest commands, and published with
``views.publish``. Whatever fails, a view is published that says what is missing:
the user never sees a stale or empty tab because Glider or Redis was down.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.access import Access
from bot.home_messages import ApprovalLine, HomeData, home_view
from bot.listing import STORE_BUDGET_S, Lister
from relay.core.clock import utc_now
from relay.core.listing import HOME_PAGE, Listing, page_of
from relay.core.policy import Verb
from relay.core.records import RequestRecord
from relay.slack.client import SlackApi
from relay.store import keys
from relay.store.confirmations import Approval, pending_approvals
from relay.store.requests import RequestStore

log = logging.getLogger(__name__)

PUBLISH_BUDGET_S = 5.0
APPROVALS_PAGE = 50  # pending approvals read at a time to find the user's
APPROVALS_READ = 500  # at most this many (soonest due first); the tab says when it stopped
COMMANDS_READ = 5


@dataclass(frozen=True)
class HomeTab:
    """Builds and publishes one user's Home tab."""

    redis: aioredis.Redis
    lister: Lister
    slack: SlackApi
    access: Access

    async def publish(self, user_id: str, offset: int = 0) -> None:
        """Publish the page at ``offset`` of ``user_id``'s Home tab; never raises."""
        web = self.slack.web
        if web is None:
            log.error("home tab not published: no SLACK_BOT_TOKEN")
            return
        try:
            view = home_view(await self.build(user_id, offset))
        except Exception:  # a bug must still leave the user a view, not a blank tab
            log.exception("home tab not built")
            view = home_view(HomeData(user_id=user_id, now=utc_now(), glider_note=_BROKEN))
        try:
            async with asyncio.timeout(PUBLISH_BUDGET_S):
                await web.views_publish(user_id=user_id, view=view)
        except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            log.error("home tab not published", extra={"error": repr(exc)[:300]})

    async def build(self, user_id: str, offset: int) -> HomeData:
        now = utc_now()
        listing, note = await self.lister.listing()
        ids = [r.portfolio_id for r in listing.rows] if listing else []
        visible = await self.access.visible(user_id, ids)
        if visible is None:
            return HomeData(user_id=user_id, now=now, refused=True)
        commands, store_note = await self._commands(user_id)
        approvals, approvals_cut = await self._approvals(user_id, now)
        if listing is None:
            return HomeData(
                user_id=user_id,
                now=now,
                glider_note=note,
                approvals=approvals,
                approvals_cut=approvals_cut,
                commands=commands,
                store_note=store_note,
            )
        shown = Listing(rows=tuple(r for r in listing.rows if r.portfolio_id in visible))
        page = page_of(shown.model_copy(update={"cut": listing.cut}), offset, HOME_PAGE)
        latest, latest_note = await self.lister.latest([r.portfolio_id for r in page.rows])
        return HomeData(
            user_id=user_id,
            now=now,
            page=page,
            latest=latest,
            approvals=approvals,
            approvals_cut=approvals_cut,
            commands=commands,
            store_note=store_note or latest_note,
        )

    async def _commands(self, user_id: str) -> tuple[tuple[RequestRecord, ...], str | None]:
        try:
            async with asyncio.timeout(STORE_BUDGET_S):
                found, _ = await RequestStore(self.redis).page(
                    requester=user_id, limit=COMMANDS_READ
                )
        except (RedisError, TimeoutError):
            return (), "Your commands are unavailable: the relay's store did not answer."
        return tuple(found), None

    async def _approvals(
        self, user_id: str, now: datetime
    ) -> tuple[tuple[ApprovalLine, ...], bool]:
        """The user's approval lines (theirs, and those they may decide), and whether the
        walk stopped at ``APPROVALS_READ`` with more pending."""
        lines: list[ApprovalLine] = []
        try:
            async with asyncio.timeout(STORE_BUDGET_S):
                for offset in range(0, APPROVALS_READ, APPROVALS_PAGE):
                    found = await pending_approvals(self.redis, APPROVALS_PAGE, offset=offset)
                    lines += [line for a in found if (line := await self._line(a, user_id))]
                    if await self.redis.zcard(keys.APPROVALS_DUE) <= offset + APPROVALS_PAGE:
                        return tuple(lines), False
        except (RedisError, TimeoutError):
            return tuple(lines), bool(lines)
        return tuple(lines), True

    async def _line(self, approval: Approval, user_id: str) -> ApprovalLine | None:
        command = approval.command
        asker = command.requested_by
        mine = asker.user_id == user_id
        if not mine:
            decision = await self.access.decide(user_id, Verb.APPROVE, command.portfolio_id)
            if not decision.allowed:
                return None
        return ApprovalLine(
            portfolio_id=command.portfolio_id,
            request_id=command.request_id,
            requested_by=asker.user_name or asker.user_id or "someone",
            expires_at=datetime.fromtimestamp(approval.expires_at_ms / 1000, UTC),
            mine=mine,
        )


_BROKEN = "The Home tab could not be built; the relay's logs say why."
