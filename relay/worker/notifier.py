"""The notifier: tells each requester how their command went.

It consumes ``keys.REPLIES`` (appended by the same atomic step that records an
outcome) under its own consumer group. A reply goes to the command's
``response_url`` while Slack still accepts it (30 minutes, at most 5 uses,
counted in the request record) if its host is in ``SLACK_RESPONSE_URL_HOSTS``
(no other host is ever contacted), otherwise as a direct message
(``conversations.open`` + ``chat.postMessage``). Beside it, a second
consumer reads ``keys.CARDS`` and renders each command's job card
(:mod:`relay.worker.cards`); with cards on (``RELAY_JOB_CARDS``) the card is the
reply, and the separate replies are acknowledged unsent. Slack 429s and 5xx are retried
per ``Retry-After`` by :mod:`relay.slack.client`; an error past those retries
leaves the entry pending, to be retried after the claim timeout.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis

from relay.core.clock import Clock, utc_now
from relay.core.plans import ReplyKind
from relay.core.records import REPLY_USES, RequestRecord
from relay.slack import response_urls
from relay.slack.client import SlackApi
from relay.slack.replies import render
from relay.store import dead_letters, keys, outcomes, replies
from relay.store.faults import RedisFaults
from relay.store.requests import RequestStore
from relay.store.streams import DeadEntry, PendingEntry, StreamConsumer
from relay.worker.cards import BUSY, CardBusy, CardSender, NowhereToRender
from relay.worker.health import ReadProgress

log = logging.getLogger(__name__)

RESPONSE_URL_TTL = timedelta(minutes=30)
RESPONSE_URL_USES = 5


class Notifier:
    """Handles replies-stream entries; :attr:`consumer` runs it."""

    def __init__(
        self,
        redis: aioredis.Redis,
        slack: SlackApi,
        *,
        consumer: str,
        clock: Clock = utc_now,
        claim_idle_ms: int = 60_000,
        cards: bool = False,
    ) -> None:
        self._redis = redis
        self._requests = RequestStore(redis)
        self._slack = slack
        self._clock = clock
        # With job cards on, the card is the requester's reply: the separate replies are
        # not sent (the card's final state is noted as the reply, relay/worker/cards.py).
        self._cards_on = cards
        # A card's render lock lasts one claim timeout, kept alive while its holder lives
        # (RenderLock.holding): a dead holder's lock runs out about when its entry is
        # reclaimed, so the reclaiming worker hardly waits (a wait is exposure to a crash).
        self._cards = CardSender(redis, slack, clock=clock, lock_ms=claim_idle_ms)
        self.consumer = StreamConsumer(
            redis,
            keys.REPLIES,
            keys.REPLIES_GROUP,
            consumer,
            self.handle,
            claim_idle_ms=claim_idle_ms,
            dead_stream=keys.REPLIES_DEAD,
            on_dead=self._note_dead,
        )

        self.cards_consumer = StreamConsumer(
            redis,
            keys.CARDS,
            keys.CARDS_GROUP,
            consumer,
            self.handle_card,
            claim_idle_ms=claim_idle_ms,
            dead_stream=keys.CARDS_DEAD,
            on_dead=self._note_card_dead,
        )

    @property
    def watched(self) -> tuple[ReadProgress | RedisFaults, ...]:
        """The readers whose health the worker reports: both consumers'."""
        return (*self.consumer.watched, *self.cards_consumer.watched)

    async def run(self) -> None:
        await asyncio.gather(self.consumer.run(), self.cards_consumer.run())

    def stop(self, grace_s: float) -> None:
        self.consumer.stop(grace_s)
        self.cards_consumer.stop(grace_s)

    async def handle(self, delivery: PendingEntry) -> None:
        """Send one reply, then acknowledge it."""
        if self._cards_on:
            await self.consumer.ack(delivery)  # the job card tells the requester
            return
        try:
            kind = ReplyKind(delivery.fields.get("kind", ""))
            request_id = delivery.fields["request_id"]
        except (ValueError, KeyError):
            await self.consumer.dead_letter(delivery, "not a reply entry")
            return
        record = await self._requests.get(request_id)
        if record is None:
            await self.consumer.dead_letter(delivery, f"no record of {request_id}")
            return
        if kind is ReplyKind.AWAITING_USER and record.state.is_final:
            # Already over: the final reply (queued behind this one) says how it ended.
            await self.consumer.ack(delivery)
            return
        if record.reply_status == replies.SENT and record.reply_kind == kind.value:
            # Told already: the entry is read again (its group was recreated from the
            # stream's start) or redelivered after the note; the requester hears it once.
            await self.consumer.ack(delivery)
            return
        message = render(record, kind, now=self._clock())
        via = "response_url" if await self._respond(record, message) else None
        if via is None and await self._direct(record, message):
            via = "direct_message"
        if via is None:
            reason = "no way left to tell the requester (response_url spent, no bot token or user)"
            await self.consumer.dead_letter(delivery, reason)
            return
        await replies.note_sent(
            self._redis, record.request_id, kind=kind.value, via=via, at=self._clock()
        )
        await self.consumer.ack(delivery)
        log.info(
            "reply sent",
            extra={
                "request_id": record.request_id,
                "portfolio_id": record.portfolio_id,
                "operation_id": record.operation_id,
                "reply": kind.value,
                "via": via,
            },
        )

    async def handle_card(self, delivery: PendingEntry) -> None:
        """Render a job card's latest version (relay/worker/cards.py), then acknowledge."""
        request_id = delivery.fields.get("request_id", "")
        if not self._cards_on or not request_id:
            await self.cards_consumer.ack(delivery)  # cards off: the replies tell
            return
        try:
            record = await self._cards.send(request_id)
            if record == BUSY and delivery.redelivered:
                # Perhaps this is the entry of a holder that died with the lock: it is
                # what guarantees the card, so it waits here until the lock runs out (not
                # as redeliveries, which would dead-letter it first).
                record = await self._cards.send_when_free(request_id)
                if record == BUSY:
                    raise CardBusy(request_id)
        except NowhereToRender as exc:
            await self.cards_consumer.dead_letter(delivery, str(exc))
            return
        if record is None:  # (BUSY, first delivery: the live holder renders this too)
            await self.cards_consumer.dead_letter(delivery, f"no record of {request_id}")
            return
        await self.cards_consumer.ack(delivery)

    async def _note_dead(self, dead: DeadEntry) -> None:
        """A reply given up on: the record says the requester was not told, and where it waits."""
        request_id = dead.fields.get("request_id")
        if request_id:
            await replies.note_not_sent(
                self._redis,
                request_id,
                kind=dead.fields.get("kind", ""),
                reason=dead.reason,
                dead_id=dead_letters.public_id(dead_letters.DeadStream.REPLIES, dead.dead_id),
                at=self._clock(),
            )

    async def _note_card_dead(self, dead: DeadEntry) -> None:
        """A card given up on: the record says the requester was not told (the entry
        waits in ``keys.CARDS_DEAD``)."""
        request_id = dead.fields.get("request_id")
        if request_id:
            await replies.note_not_sent(
                self._redis,
                request_id,
                kind="card",
                reason=dead.reason,
                dead_id=f"cards:{dead.dead_id}",
                at=self._clock(),
            )

    async def _respond(self, record: RequestRecord, message: dict[str, Any]) -> bool:
        """Post to the command's response_url if it is still usable; True when Slack took it."""
        url = record.response_url
        if not url or self._clock() - record.accepted_at >= RESPONSE_URL_TTL:
            return False
        if not response_urls.is_allowed(url, self._slack.response_url_hosts):
            log.warning(
                "response_url host not in SLACK_RESPONSE_URL_HOSTS; sending a direct message",
                extra={"request_id": record.request_id, "host": response_urls.host_of(url)},
            )
            return False
        taken = await outcomes.take_reply_use(
            self._redis, record.request_id, field=REPLY_USES, limit=RESPONSE_URL_USES
        )
        if not taken:
            return False
        status = await self._slack.post_response(url, {"response_type": "ephemeral", **message})
        if 200 <= status < 300:
            return True
        log.info(
            "response_url answered %s; sending a direct message instead",
            status,
            extra={"request_id": record.request_id},
        )
        return False

    async def _direct(self, record: RequestRecord, message: dict[str, Any]) -> bool:
        """Direct-message the requester; False when there is no bot token or user id."""
        user = record.requested_by.user_id
        if self._slack.web is None or not user:
            return False
        opened = await self._slack.web.conversations_open(users=user)
        channel = opened["channel"]["id"]
        await self._slack.web.chat_postMessage(
            channel=channel, text=message["text"], blocks=message["blocks"]
        )
        return True
