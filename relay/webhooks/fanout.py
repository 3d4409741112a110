"""Fan-out: one event becomes one delivery per matching subscription (and per on-call alert).

:func:`plan` is pure. :func:`fan_out` writes the plans of a batch of stream
entries and acknowledges each entry in the same Lua step, guarded by the routing
table's version: if a subscription changed since the table was read, nothing is
written and :class:`FanOutBatcher` re-reads the table and plans again.
"""

from __future__ import annotations

import hashlib
import json

from relay.core.clock import epoch_ms, to_ms
from relay.core.events import Event
from relay.core.ids import ulid
from relay.store import keys
from relay.store.batching import Coalescer
from relay.webhooks.lua import Scripts
from relay.webhooks.oncall import Alert, OnCallRules, event_alerts
from relay.webhooks.subscriptions import RoutingTable, SubscriptionStore


def delivery_ulid(event: Event, target_id: str) -> str:
    """A ULID stable per (event, target): the event's time, then a hash of both ids.

    It names the delivery (``dlv_``) and is its ``webhook-id`` (``msg_``), so a
    retry, a replay or a second fan-out of the same event all carry the same id.
    """
    digest = hashlib.sha256(f"{event.id}:{target_id}".encode()).digest()
    return ulid(to_ms(event.timestamp), digest[:10])


def _row(
    uid: str, target: str, event_id: str, kind: str, body: str, *, alert: Alert | None
) -> list[str]:
    """One row of the fan-out script: id, target, event id, type, webhook id, body, marker, mode."""
    marker, mode = (alert.marker, alert.mode) if alert else ("", "")
    return [f"dlv_{uid}", target, event_id, kind, f"msg_{uid}", body, marker, mode]


def plan(
    event: Event,
    table: RoutingTable,
    rules: OnCallRules,
    *,
    body: str | None = None,
    traceparent: str = "",
) -> list[list[str]]:
    """The deliveries ``event`` makes: one per matching subscription, one per on-call alert.

    ``body`` is the event's webhook body when already at hand (as on the stream);
    ``traceparent`` is its stream entry's trace.
    """
    kind = event.type.value
    body = body if body is not None else event.body().decode()
    rows = [
        _row(delivery_ulid(event, sid), sid, event.id, kind, body, alert=None)
        for sid in table.matching(kind)
    ]
    for alert in event_alerts(event, rules):
        uid = delivery_ulid(event, alert.target)
        rows.append(_row(uid, alert.target, event.id, kind, alert.body.decode(), alert=alert))
    # Each delivery keeps its event's trace (a 9th field): its attempts' spans continue it.
    return [[*row, traceparent] for row in rows]


async def fan_out(
    scripts: Scripts,
    *,
    group: str,
    version: str,
    batch: list[tuple[str, list[list[str]]]],
    now_ms: int,
) -> list[int] | None:
    """Write each entry's rows and XACK it; deliveries created per entry, or None if stale."""
    created = await scripts.fan_out(
        keys=[keys.EVENTS],
        args=[group, version, now_ms, json.dumps(batch)],
    )
    if isinstance(created, int):
        return None
    return [int(n) for n in created]


def alert_rows(alerts: list[Alert], *, source_id: str, kind: str, now_ms: int) -> list[list[str]]:
    """Rows for alerts raised by the dispatcher itself (not by an event), e.g. a disable."""
    rows = []
    for alert in alerts:
        digest = hashlib.sha256(f"{source_id}:{now_ms}:{alert.target}".encode()).digest()
        uid = ulid(now_ms, digest[:10])
        rows.append(_row(uid, alert.target, source_id, kind, alert.body.decode(), alert=alert))
    return rows


class FanOutBatcher:
    """Coalesces concurrent fan-outs into one Lua call: whatever arrives while a call
    is in Redis goes out together in the next, so a burst costs a round trip per batch."""

    def __init__(
        self,
        scripts: Scripts,
        subscriptions: SubscriptionStore,
        rules: OnCallRules,
        *,
        group: str = keys.EVENTS_GROUP,
        max_batch: int = 64,
    ) -> None:
        self._scripts = scripts
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
                self._scripts,
                group=self._group,
                version=table.version,
                batch=rows,
                now_ms=epoch_ms(),
            )
            if created is not None:
                return created
            self._table = None  # a subscription changed: re-read and plan again
        raise RuntimeError("subscriptions kept changing during fan-out; the entries stay pending")
