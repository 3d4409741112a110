"""Fan-out: one event becomes one delivery per matching subscription (and per on-call alert).

:func:`plan` is pure. :func:`fan_out` writes the plans of a batch of stream
entries and acknowledges each entry in the same Lua step, guarded by the routing
table's version: if a subscription changed since the table was read, nothing is
written and :class:`FanOutBatcher` re-reads the table and plans again.
"""

from __future__ import annotations

import hashlib
import json

import redis.asyncio as aioredis

from relay.core.clock import epoch_ms, to_ms
from relay.core.events import Event
from relay.core.ids import ulid
from relay.store import keys
from relay.store.batching import Coalescer
from relay.store.scripts import LuaScript
from relay.webhooks.keyspace import Keyspace, NewDelivery
from relay.webhooks.oncall import Alert, OnCallRules, event_alerts
from relay.webhooks.subscriptions import RoutingTable, SubscriptionStore

_FAN_OUT = LuaScript("webhook_fan_out.lua")


def delivery_ulid(event: Event, target_id: str) -> str:
    """A ULID stable per (event, target): the event's time, then a hash of both ids.

    It names the delivery (``dlv_``) and is its ``webhook-id`` (``msg_``), so a
    retry, a replay or a second fan-out of the same event all carry the same id.
    """
    digest = hashlib.sha256(f"{event.id}:{target_id}".encode()).digest()
    return ulid(to_ms(event.timestamp), digest[:10])


def _row(
    uid: str,
    target: str,
    event_id: str,
    kind: str,
    body: str,
    *,
    alert: Alert | None,
    traceparent: str,
) -> NewDelivery:
    """The delivery of ``uid`` to ``target`` (an on-call one carries its alert's marker)."""
    marker, mode, change = (alert.marker, alert.mode, alert.change) if alert else ("", "", "")
    return NewDelivery(
        f"dlv_{uid}", target, event_id, kind, f"msg_{uid}", body, marker, mode, traceparent, change
    )


def plan(
    event: Event,
    table: RoutingTable,
    rules: OnCallRules,
    *,
    body: str | None = None,
    traceparent: str = "",
) -> list[NewDelivery]:
    """The deliveries ``event`` makes: one per matching subscription, one per on-call alert.

    ``body`` is the event's webhook body when already at hand (as on the stream);
    ``traceparent`` is its stream entry's trace, which each delivery keeps.
    """
    kind, trace = event.type.value, traceparent
    body = body if body is not None else event.body().decode()
    rows = [
        _row(delivery_ulid(event, sid), sid, event.id, kind, body, alert=None, traceparent=trace)
        for sid in table.matching(kind)
    ]
    for alert in event_alerts(event, rules):
        uid = delivery_ulid(event, alert.target)
        alert_body = alert.body.decode()
        rows.append(
            _row(uid, alert.target, event.id, kind, alert_body, alert=alert, traceparent=trace)
        )
    return rows


async def fan_out(
    redis: aioredis.Redis,
    *,
    group: str,
    version: str,
    batch: list[tuple[str, list[NewDelivery]]],
    now_ms: int,
) -> list[int] | None:
    """Write each entry's rows and XACK it; deliveries created per entry, or None if stale."""
    space = Keyspace(first=2)
    for _, rows in batch:
        space.add_new(rows)
    entries = [[entry_id, [row.row() for row in rows]] for entry_id, rows in batch]
    created = await _FAN_OUT(
        redis,
        [keys.EVENTS, *space.keys()],
        [space.spec(), group, version, now_ms, json.dumps(entries)],
    )
    if isinstance(created, int):
        return None
    return [int(n) for n in created]


def alert_rows(alerts: list[Alert], *, source_id: str, kind: str, now_ms: int) -> list[NewDelivery]:
    """Rows for alerts raised by the dispatcher itself (not by an event), e.g. a disable."""
    rows = []
    for alert in alerts:
        digest = hashlib.sha256(f"{source_id}:{now_ms}:{alert.target}".encode()).digest()
        uid = ulid(now_ms, digest[:10])
        body = alert.body.decode()
        rows.append(_row(uid, alert.target, source_id, kind, body, alert=alert, traceparent=""))
    return rows


class FanOutBatcher:
    """Coalesces concurrent fan-outs into one Lua call: whatever arrives while a call
    is in Redis goes out together in the next, so a burst costs a round trip per batch."""

    def __init__(
        self,
        redis: aioredis.Redis,
        subscriptions: SubscriptionStore,
        rules: OnCallRules,
        *,
        group: str = keys.EVENTS_GROUP,
        max_batch: int = 64,
    ) -> None:
        self._redis = redis
        self._subscriptions = subscriptions
        self._rules = rules
        self._group = group
        self._table: RoutingTable | None = None
        self._batches: Coalescer[tuple[str, Event, str | None, str], int] = Coalescer(
            self._write, max_batch=max_batch
        )

    async def submit(
        self, entry_id: str, event: Event, body: str | None = None, traceparent: str = ""
    ) -> int:
        """Fan ``event`` out (acknowledging ``entry_id``); the number of deliveries made."""
        return await self._batches.submit((entry_id, event, body, traceparent))

    async def _write(self, batch: list[tuple[str, Event, str | None, str]]) -> list[int]:
        for _ in range(5):
            table = self._table or await self._subscriptions.routing_table()
            self._table = table
            rows = [
                (entry_id, plan(event, table, self._rules, body=body, traceparent=trace))
                for entry_id, event, body, trace in batch
            ]
            created = await fan_out(
                self._redis,
                group=self._group,
                version=table.version,
                batch=rows,
                now_ms=epoch_ms(),
            )
            if created is not None:
                return created
            self._table = None  # a subscription changed: re-read and plan again
        raise RuntimeError("subscriptions kept changing during fan-out; the entries stay pending")
