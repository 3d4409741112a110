"""Rendering an on-call alert in Slack: one message per incident, kept current.

An attempt of a delivery to the on-call Slack target names an alert
(:func:`relay.webhooks.alert_card.wake_marker`). Under the alert's render lock
(relay/store/render_lock.py) it renders the latest version not yet shown:
``chat.postMessage`` once, then ``chat.update`` on that ``ts``; it goes on while a newer
version arrived meanwhile, so Slack never sees an older state after a newer one.

- A 429, 5xx or any other Slack error raises: the delivery is retried (``Retry-After``
  honoured) and the change is not lost, since every retry renders the latest version.
- A message deleted (``message_not_found``) is posted again; ``invalid_blocks`` is
  retried as plain text.
- Another attempt holding the lock: :class:`AlertBusy`, retried shortly (the holder
  renders everything up to what it finds, and if it died its lock runs out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from relay.core.cards import PLAIN_TEXT_ERRORS
from relay.slack.client import slack_error
from relay.store import keys
from relay.store.connection import text_map
from relay.store.render_lock import RenderLock
from relay.webhooks.alert_card import StoredAlert
from relay.webhooks.alert_view import render

ALERT_LOCK_MS = 10_000  # kept alive while rendering (RenderLock.holding); a dead holder's runs out
# How long an attempt waits for another's render to finish before it counts as busy: a live
# holder's render takes a few Slack calls; a dead holder's lock is left to run out (retried).
BUSY_WAIT_S = 5.0
GONE_ERRORS = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
UP_TO_DATE: dict[str, Any] = {"ok": True, "note": "the alert already shows this"}


class AlertBusy(Exception):
    """Another attempt is rendering this alert: this one is retried shortly."""


class AlertLost(Exception):
    """The alert's lock ran out while rendering: the attempt is retried."""


class NoChannel(ValueError):
    """The alert has no channel to be posted in (it was never opened here)."""


@dataclass(frozen=True, slots=True)
class Placed:
    channel: str
    ts: str
    answer: dict[str, Any]


class AlertSender:
    """Renders alerts named by on-call Slack deliveries (see the module docstring)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        lock_ms: int = ALERT_LOCK_MS,
        busy_wait_s: float = BUSY_WAIT_S,
    ) -> None:
        self._redis = redis
        self._lock_ms = lock_ms
        self._busy_wait_s = busy_wait_s

    async def show(self, web: AsyncWebClient, marker: str) -> dict[str, Any]:
        """Render what ``marker``'s alert shows now; Slack's last answer."""
        key = keys.oncall_alert(marker)
        lock = RenderLock(self._redis, key, keys.oncall_alert_lock(marker), lock_ms=self._lock_ms)
        if not await lock.claim(wait_s=self._busy_wait_s):
            raise AlertBusy(marker)
        answer = UP_TO_DATE
        async with lock.holding():
            while True:
                stored = StoredAlert.from_hash(marker, text_map(await self._redis.hgetall(key)))
                version = stored.to_render()
                if version is None:
                    # A change recorded since the read keeps the lock ours: render it too.
                    nothing = await lock.settle(None)
                    if not nothing.ours:
                        raise AlertLost(marker)
                    if not nothing.more:
                        return answer
                    continue
                placed = await self._place(lock, web, stored)
                answer = placed.answer
                settled = await lock.settle(version, channel=placed.channel, ts=placed.ts)
                if not settled.ours:
                    raise AlertLost(marker)
                if not settled.more:
                    return answer

    async def _place(self, lock: RenderLock, web: AsyncWebClient, stored: StoredAlert) -> Placed:
        assert stored.state is not None
        if stored.ts and stored.message_channel:
            body = render(stored.state, stored.message_channel)
            try:
                answer = await self._call(lock, web.chat_update, ts=stored.ts, **body)
                return Placed(stored.message_channel, stored.ts, answer)
            except SlackApiError as exc:
                if slack_error(exc) not in GONE_ERRORS:
                    raise
        channel = stored.channel or stored.message_channel
        if not channel:
            raise NoChannel("the alert has no channel to be posted in")
        answer = await self._call(lock, web.chat_postMessage, **render(stored.state, channel))
        return Placed(channel, str(answer.get("ts") or ""), answer)

    async def _call(self, lock: RenderLock, method: Any, **body: Any) -> dict[str, Any]:
        """One Web API call under a renewed lock; ``invalid_blocks``: once more, as plain text."""
        if not await lock.renew():
            raise AlertLost(str(body.get("channel")))
        try:
            response = await method(**body)
        except SlackApiError as exc:
            if slack_error(exc) not in PLAIN_TEXT_ERRORS:
                raise
            # An update without blocks keeps the old ones; an empty list clears them.
            response = await method(**{**body, "blocks": []})
        return dict(response.data) if isinstance(response.data, dict) else {}
