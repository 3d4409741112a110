"""The keys a webhook script may touch, declared up front (``relay/store/lua/webhook_keys.lua``).

Redis's EVAL contract (and Cluster routing) wants every key a script touches in
``KEYS``. The webhook scripts work on subscriptions, deliveries and on-call
markers named by the data, so each wrapper collects the ids it knows in a
:class:`Keyspace`, which builds every key from :mod:`relay.store.keys` in the
fixed layout ``webhook_keys.lua`` reads: the shared indexes, then a block of
``4 + len(STATUSES)`` keys per subscription, one key per delivery, two per marker
(its open marker and its alert's Slack message).

:class:`NewDelivery` is the row a fan-out (or a disable alert) asks a script to create.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from relay.store import keys
from relay.webhooks.models import ALL_EVENTS, EVENT_TYPES, DeliveryStatus

STATUSES: tuple[str, ...] = tuple(s.value for s in DeliveryStatus)
ROUTABLE_TYPES: tuple[str, ...] = (*sorted(EVENT_TYPES), ALL_EVENTS)
ATTEMPTS_KEPT = 50
ONCALL_OPEN_TTL_S = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """One delivery a script creates: for a subscription, or (with a marker) an on-call alert."""

    delivery_id: str
    subscription_id: str
    event_id: str
    event_type: str
    webhook_id: str
    body: str
    marker: str = ""  # an on-call alert's dedup key
    mode: str = ""  # "open" or "close" for an alert
    traceparent: str = ""  # its event's trace (relay/tracing.py): its attempts continue it
    alert: str = ""  # what it changes in its alert's Slack message (AlertChange JSON)

    def row(self) -> list[str]:
        """The row as the script reads it (webhook_keys.lua's ``create``)."""
        return [
            self.delivery_id,
            self.subscription_id,
            self.event_id,
            self.event_type,
            self.webhook_id,
            self.body,
            self.marker,
            self.mode,
            self.traceparent,
            self.alert,
        ]


def subscription_keys(sid: str) -> list[str]:
    """One subscription's block: hash, due, in-flight, deliveries, deliveries by status."""
    return [
        keys.subscription(sid),
        keys.subscription_due(sid),
        keys.subscription_inflight(sid),
        keys.subscription_deliveries(sid),
        *(keys.subscription_deliveries(sid, s) for s in STATUSES),
    ]


@dataclass(slots=True)
class Keyspace:
    """The ids one script call may touch; :meth:`keys` and :meth:`spec` are its KEYS and ARGV[1]."""

    first: int = 1  # KEYS index where the layout starts (a script's own keys come before)
    subscriptions: dict[str, None] = field(default_factory=dict)  # ordered sets
    deliveries: dict[str, None] = field(default_factory=dict)
    markers: dict[str, None] = field(default_factory=dict)

    def add_subscriptions(self, ids: Iterable[str]) -> None:
        self.subscriptions.update(dict.fromkeys(ids))

    def add_deliveries(self, ids: Iterable[str]) -> None:
        self.deliveries.update(dict.fromkeys(ids))

    def add_new(self, rows: Iterable[NewDelivery]) -> None:
        """Everything creating ``rows`` touches: their subscriptions, deliveries, markers."""
        for row in rows:
            self.subscriptions[row.subscription_id] = None
            self.deliveries[row.delivery_id] = None
            if row.marker:
                self.markers[row.marker] = None

    def keys(self) -> list[str]:
        """The layout's keys, in the order ``webhook_keys.lua`` takes them."""
        out = [
            keys.SUBSCRIPTIONS,
            keys.SUBSCRIPTIONS_VERSION,
            keys.SUBSCRIPTIONS_READY,
            keys.DELIVERIES,
            *(keys.deliveries_by_status(s) for s in STATUSES),
            *(keys.subscriptions_by_type(t) for t in ROUTABLE_TYPES),
        ]
        for sid in self.subscriptions:
            out.extend(subscription_keys(sid))
        out.extend(keys.delivery(did) for did in self.deliveries)
        for marker in self.markers:
            out.extend((keys.oncall_open(marker), keys.oncall_alert(marker)))
        return out

    def spec(self, **extra: Any) -> str:
        """ARGV[1]: the ids in the order of :meth:`keys`, and ``extra`` settings."""
        return json.dumps(
            {
                "first": self.first,
                "statuses": STATUSES,
                "types": ROUTABLE_TYPES,
                "subs": list(self.subscriptions),
                "dlvs": list(self.deliveries),
                "open": list(self.markers),
                "open_ttl": ONCALL_OPEN_TTL_S,
                "kept": ATTEMPTS_KEPT,
                **extra,
            }
        )
