"""Fan-out: one event becomes one delivery per matching subscription (and per on-call alert).

:func:`plan` is pure. :func:`fan_out` writes the plan and acknowledges the
event's stream entry in one Lua step, guarded by the routing table's version:
if a subscription changed since the table was read, nothing is written and the
caller re-reads the table and plans again.
"""

from __future__ import annotations

import hashlib
import json

from relay import keys
from relay.events import Event
from relay.ids import ulid
from relay.webhooks.lua import LAYOUT, Scripts
from relay.webhooks.models import datetime_to_ms
from relay.webhooks.oncall import Alert, OnCallRules, event_alerts
from relay.webhooks.subscriptions import RoutingTable

STALE = -1


def delivery_ulid(event: Event, target_id: str) -> str:
    """A ULID stable per (event, target): the event's time, then a hash of both ids.

    It names the delivery (``dlv_``) and is its ``webhook-id`` (``msg_``), so a
    retry, a replay or a second fan-out of the same event all carry the same id.
    """
    digest = hashlib.sha256(f"{event.id}:{target_id}".encode()).digest()
    return ulid(datetime_to_ms(event.timestamp), digest[:10])


def _row(
    uid: str, target: str, event_id: str, kind: str, body: str, *, alert: Alert | None
) -> list[str]:
    """One row of the fan-out script: id, target, event id, type, webhook id, body, marker, mode."""
    marker, mode = (alert.marker, alert.mode) if alert else ("", "")
    return [f"dlv_{uid}", target, event_id, kind, f"msg_{uid}", body, marker, mode]


def plan(event: Event, table: RoutingTable, rules: OnCallRules) -> list[list[str]]:
    """The deliveries ``event`` makes: one per matching subscription, one per on-call alert."""
    body, kind = event.body().decode(), event.type.value
    rows = [
        _row(delivery_ulid(event, sid), sid, event.id, kind, body, alert=None)
        for sid in table.matching(kind)
    ]
    for alert in event_alerts(event, rules):
        uid = delivery_ulid(event, alert.target)
        rows.append(_row(uid, alert.target, event.id, kind, alert.body.decode(), alert=alert))
    return rows


async def fan_out(
    scripts: Scripts,
    *,
    group: str,
    entry_id: str,
    version: str,
    rows: list[list[str]],
    now_ms: int,
) -> int:
    """Write ``rows`` and XACK ``entry_id``; the number of deliveries created, or STALE."""
    created = await scripts.fan_out(
        keys=[keys.EVENTS],
        args=[LAYOUT, group, entry_id, version, now_ms, json.dumps(rows)],
    )
    return int(created)


def alert_rows(alerts: list[Alert], *, source_id: str, kind: str, now_ms: int) -> list[list[str]]:
    """Rows for alerts raised by the dispatcher itself (not by an event), e.g. a disable."""
    rows = []
    for alert in alerts:
        digest = hashlib.sha256(f"{source_id}:{now_ms}:{alert.target}".encode()).digest()
        uid = ulid(now_ms, digest[:10])
        rows.append(_row(uid, alert.target, source_id, kind, alert.body.decode(), alert=alert))
    return rows
