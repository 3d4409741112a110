"""The notifier: tells each requester how their command went.

It consumes ``keys.REPLIES`` (appended by the same atomic step that records an
outcome) under its own consumer group. A reply goes to the command's
``response_url`` while Slack still accepts it (30 minutes, at most 5 uses,
counted in the request record) if its host is in ``SLACK_RESPONSE_URL_HOSTS``
(no other host is ever contacted), otherwise as a direct message
(``conversations.open`` + ``chat.postMessage``). Slack 429s and 5xx are retried
per ``Retry-After`` by :mod:`relay.slack.client`; an error past those retries
leaves the entry pending, to be retried after the claim timeout.

Each reply's fate is noted on the request record (:mod:`relay.store.replies`): sent
(how), or not sent (why) with the id of its dead letter, which ``dead-letters
replay`` sends again. A reply with no way left to reach the requester (response_url
spent, no bot token) is dead-lettered at once, not dropped.
"""

from __future__ import annotations

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
from relay.store import dead_letters, keys, replies
from relay.store.requests import RequestStore
from relay.store.streams import DeadEntry, PendingEntry, StreamConsumer

log = logging.getLogger(__name__)

RESPONSE_URL_TTL = timedelta(minutes=30)
RESPONSE_URL_USES = 5

# Take one of the response_url's uses if any is left.
_TAKE_USE = """
if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return 1
"""


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
    ) -> None:
        self._redis = redis
        self._requests = RequestStore(redis)
        self._slack = slack
        self._clock = clock
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

    async def run(self) -> None:
        await self.consumer.run()

    def stop(self, grace_s: float) -> None:
        self.consumer.stop(grace_s)

    async def handle(self, delivery: PendingEntry) -> None:
        """Send one reply, then acknowledge it."""
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
        taken = await self._redis.register_script(_TAKE_USE)(
            keys=[keys.request(record.request_id)], args=[REPLY_USES, RESPONSE_URL_USES]
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
