"""The job card sender: renders a request's card wherever it can live (docs/contract.md §9).

Woken by the ``card`` entries of ``keys.REPLIES`` (one per version, appended by the step
that recorded the state). Under the card's lock (relay/store/cards.py) it renders the
latest version not yet rendered, and goes on while a newer one arrived meanwhile, so
Slack never sees an older state after a newer one. Where it renders:

- the command's channel: ``chat.postMessage`` once, then ``chat.update`` on that ``ts``;
- when Slack answers that the card cannot live there (not in channel, message deleted,
  archived, ...: :data:`relay.core.cards.FALLBACK_ERRORS`), the requester's reply through
  ``response_url`` with ``replace_original`` while it is valid (30 min, 5 uses; an
  intermediate state leaves the last use to the final one), then a direct message
  (itself updated in place). ``invalid_blocks`` first retries the plain-text card.

A 429 or 5xx past the client's retries raises: the entry stays pending and is retried.
If a worker dies after Slack posted the first message but before its ``ts`` was stored,
the retry posts again: at worst a duplicate card (the first one frozen at "queued"),
never a lost final state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis
from slack_sdk.errors import SlackApiError

from relay.core import cards
from relay.core.cards import CardState, Via
from relay.core.clock import Clock
from relay.core.records import REPLY_USES, RequestRecord
from relay.slack import response_urls
from relay.slack.cards import plain_text, render
from relay.slack.client import SlackApi, slack_error
from relay.store import outcomes, replies
from relay.store.cards import CardStore
from relay.store.streams import RetryLater

log = logging.getLogger(__name__)

RESPONSE_URL_TTL = timedelta(minutes=30)
RESPONSE_URL_USES = 5
BUSY = "busy"  # what send() returns when another notifier holds the card's lock


class CardLost(RetryLater):
    """The card's lock expired while rendering: the entry is retried."""


class CardBusy(RetryLater):
    """A redelivered entry found the card locked: left pending until the lock runs out."""


class NowhereToRender(Exception):
    """Neither the channel, nor the response_url, nor a DM took the card."""


@dataclass(frozen=True, slots=True)
class Placed:
    via: Via
    channel: str | None = None
    ts: str | None = None


class CardSender:
    def __init__(
        self, redis: aioredis.Redis, slack: SlackApi, *, clock: Clock, lock_ms: int
    ) -> None:
        self._redis = redis
        self._slack = slack
        self._clock = clock
        self._lock_ms = lock_ms

    async def send(self, request_id: str, *, wait_s: float = 0.0) -> RequestRecord | str | None:
        """Render everything newer than what was rendered; the record (None: no record;
        :data:`BUSY`: another notifier holds the card, and will render it; ``wait_s``:
        how long to wait for it to let go first).

        Raises :class:`CardLost`, :class:`NowhereToRender` or Slack's error: the entry
        is then left pending (or dead-lettered by the caller).
        """
        store = CardStore(self._redis, request_id, lock_ms=self._lock_ms)
        if not await store.claim(wait_s=wait_s):
            # Another notifier renders this card; it renders every version newer than what
            # it rendered before it lets go (card_lock.lua), and if it dies its own entry,
            # still pending, is reclaimed and (retried until the lock runs out) renders the
            # latest. The caller acknowledges a first delivery, retries a redelivery.
            return BUSY
        async with store.holding():
            while True:
                card, record = await store.read()
                version = cards.to_render(card)
                if record is None or version is None:
                    # A state recorded since the read keeps the lock ours (its own entry may
                    # have been acknowledged as busy): render it rather than strand it.
                    nothing = await store.settle(None)
                    if not nothing.ours:
                        raise CardLost(request_id)  # a state may wait that nobody renders
                    if record is None or not nothing.more:
                        return record
                    continue
                placed = await self._render(store, card, record, version)
                settled = await store.settle(
                    version, via=placed.via, channel=placed.channel, ts=placed.ts
                )
                if not settled.ours:
                    raise CardLost(request_id)
                if record.state.is_final:
                    await self._told(record, placed, version)
                if not settled.more:
                    return record

    async def send_when_free(self, request_id: str) -> RequestRecord | str | None:
        """:meth:`send`, waiting (at most twice the lock's time) for another holder's lock to
        run out or be released: for a redelivered entry, which may be a dead holder's and is
        then what guarantees the card. Waiting here, the entry is held (its heartbeat keeps
        it), so it is not redelivered, and dead-lettered, while the lock only runs out."""
        return await self.send(request_id, wait_s=2 * self._lock_ms / 1000)

    async def _told(self, record: RequestRecord, placed: Placed, version: int) -> None:
        """The final card is the requester's reply: noted on the record and logged as one."""
        await replies.note_sent(
            self._redis, record.request_id, kind="final", via=placed.via.value, at=self._clock()
        )
        log.info(
            "reply sent",
            extra={
                "request_id": record.request_id,
                "portfolio_id": record.portfolio_id,
                "operation_id": record.operation_id,
                "reply": "final",
                "via": placed.via.value,
                "card_version": version,
            },
        )

    async def _render(
        self, store: CardStore, card: CardState, record: RequestRecord, version: int
    ) -> Placed:
        now = self._clock()
        full, text_only = render(record, version, now=now), plain_text(record, version, now=now)
        target = cards.first_target(card, record.requested_by.channel_id)
        if target is Via.CHANNEL:
            placed = await self._in_channel(store, card, record, full, text_only)
            if placed is not None:
                return placed
            card = CardState(version=card.version, rendered=card.rendered)
            target = Via.RESPONSE_URL
        if target is Via.RESPONSE_URL and await self._respond(store, record, full):
            return Placed(Via.RESPONSE_URL)
        placed = await self._direct(store, card, record, full, text_only)
        if placed is None:
            raise NowhereToRender("no way left to show the card (channel, response_url, DM)")
        return placed

    async def _call(self, store: CardStore, method: str, **kwargs: Any) -> dict[str, Any] | str:
        """One Web API call under a renewed lock: its answer, or the fallback error it got."""
        if not await store.renew():
            raise CardLost(method)
        web = self._slack.web
        assert web is not None
        try:
            answer = await getattr(web, method)(**kwargs)
        except SlackApiError as exc:
            error = slack_error(exc)
            if error in cards.FALLBACK_ERRORS:
                return error
            raise
        return dict(answer.data) if isinstance(answer.data, dict) else {}

    async def _post_or_update(
        self,
        store: CardStore,
        channel: str,
        ts: str | None,
        full: dict[str, Any],
        text_only: dict[str, Any],
    ) -> Placed | str:
        method = "chat_update" if ts else "chat_postMessage"
        where: dict[str, Any] = {"channel": channel, **({"ts": ts} if ts else {})}
        answer = await self._call(store, method, **where, **full)
        if isinstance(answer, str) and answer in cards.PLAIN_TEXT_ERRORS:
            # An update without blocks keeps the old ones; an empty list clears them.
            plain = {**text_only, "blocks": []} if ts else text_only
            answer = await self._call(store, method, **where, **plain)
        if isinstance(answer, str):
            return answer
        return Placed(Via.CHANNEL, channel, ts or str(answer.get("ts") or ""))

    async def _in_channel(
        self,
        store: CardStore,
        card: CardState,
        record: RequestRecord,
        full: dict[str, Any],
        text_only: dict[str, Any],
    ) -> Placed | None:
        channel = card.channel or record.requested_by.channel_id
        if self._slack.web is None or not channel:
            return None
        placed = await self._post_or_update(store, channel, card.ts, full, text_only)
        if isinstance(placed, str):
            log.info(
                "job card cannot live in its channel (%s); falling back",
                placed,
                extra={"request_id": record.request_id},
            )
            return None
        return placed

    async def _respond(self, store: CardStore, record: RequestRecord, full: dict[str, Any]) -> bool:
        url = record.response_url
        if not url or self._clock() - record.accepted_at >= RESPONSE_URL_TTL:
            return False
        if not response_urls.is_allowed(url, self._slack.response_url_hosts):
            return False
        limit = cards.response_url_limit(RESPONSE_URL_USES, final=record.state.is_final)
        if not await outcomes.take_reply_use(
            self._redis, record.request_id, field=REPLY_USES, limit=limit
        ):
            return False
        if not await store.renew():
            raise CardLost(record.request_id)
        body = {"replace_original": True, "text": full["text"], "blocks": full["blocks"]}
        status = await self._slack.post_response(url, body)
        return 200 <= status < 300

    async def _direct(
        self,
        store: CardStore,
        card: CardState,
        record: RequestRecord,
        full: dict[str, Any],
        text_only: dict[str, Any],
    ) -> Placed | None:
        user = record.requested_by.user_id
        if self._slack.web is None or not user:
            return None
        ts = card.ts if card.via is Via.DIRECT_MESSAGE else None
        channel = card.channel if ts else None
        if channel is None:
            opened = await self._call(store, "conversations_open", users=user)
            if isinstance(opened, str):
                return None
            channel = str(opened["channel"]["id"])
        placed = await self._post_or_update(store, channel, ts, full, text_only)
        if isinstance(placed, str) and ts:  # the DM card was deleted: a new one
            placed = await self._post_or_update(store, channel, None, full, text_only)
        if isinstance(placed, str):
            return None
        return Placed(Via.DIRECT_MESSAGE, placed.channel, placed.ts)
