"""``/rebalance list [page]``: a page of Glider's portfolios in the channel, for the asker.

Answered like ``/rebalance status``: ephemeral, in the ack when the list is ready
within the patience (the cache usually has it), else "looking it up" and the
list follows through the ``response_url``. Rows the access policy does not let the
user read are left out; a user who may read none is refused.
"""

from __future__ import annotations

import asyncio

from bot.access import Access
from bot.background import Background
from bot.home_messages import ListView, list_refused, portfolio_list
from bot.listing import Lister
from bot.messages import Reply, _code
from bot.status import LateReply
from relay.core.clock import utc_now
from relay.core.listing import CHANNEL_PAGE, Listing, page_of
from relay.slack.blocks import section


async def build_list(page: int, user_id: str, *, lister: Lister, access: Access) -> Reply:
    """The reply for page ``page`` (1-based) of the list as ``user_id`` may see it."""
    listing, note = await lister.listing()
    ids = [r.portfolio_id for r in listing.rows] if listing else []
    visible = await access.visible(user_id, ids)
    if visible is None:
        return list_refused()
    if listing is None:
        return portfolio_list(ListView(now=utc_now(), glider_note=note))
    shown = Listing(
        rows=tuple(r for r in listing.rows if r.portfolio_id in visible), cut=listing.cut
    )
    one = page_of(shown, (page - 1) * CHANNEL_PAGE, CHANNEL_PAGE)
    latest, _ = await lister.latest([r.portfolio_id for r in one.rows])
    return portfolio_list(ListView(now=utc_now(), page=one, latest=latest))


async def answer_list(
    page: int,
    user_id: str,
    *,
    lister: Lister,
    access: Access,
    late: LateReply,
    background: Background,
    patience: float,
) -> Reply:
    """The ack of ``/rebalance list``; after ``patience`` s the list follows via ``late``."""
    lookup = asyncio.ensure_future(build_list(page, user_id, lister=lister, access=access))
    done, _ = await asyncio.wait({lookup}, timeout=patience)
    if lookup in done:
        return lookup.result()

    async def follow() -> None:
        await late(await lookup)

    background.spawn(follow(), name="list")
    text = (
        f":mag: Listing the portfolios on Glider for {_code('/rebalance list')}; it follows here."
    )
    return Reply(text=text, blocks=[section(text)])
