"""Acting on an open on-call incident: the acknowledge, once, queued like any delivery.

The incident's open marker (``keys.oncall_open``) is the truth of whether it is open:
fan-out sets it on a failure and deletes it on the next completion. An acknowledge is
one Lua step (``oncall_ack.lua``) that checks the marker, records who acknowledged it
there and creates the PagerDuty ``acknowledge`` delivery, so a second click, or a click
on a resolved incident, sends nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import redis.asyncio as aioredis

from relay.core.audit import AuditAction, AuditActor, new_entry
from relay.core.clock import epoch_ms, to_ms
from relay.core.commands import Requester
from relay.core.ids import ulid
from relay.store import keys
from relay.store.connection import text
from relay.store.scripts import LuaScript
from relay.webhooks.keyspace import Keyspace, NewDelivery
from relay.webhooks.oncall import (
    CLOSE,
    PAGERDUTY_TARGET,
    acknowledge_body,
    resolve_body,
    subscription_key,
)

_ACK = LuaScript("oncall_ack.lua")
_RESOLVE = LuaScript("oncall_resolve.lua")
ACK_KIND = "relay.oncall_acknowledged"
RESOLVE_KIND = "relay.subscription_reenabled"

AckOutcome = Literal["done", "resolved", "already"]


@dataclass(frozen=True, slots=True)
class Ack:
    """What an acknowledge click did: ``done`` now, or why not, and who acknowledged."""

    outcome: AckOutcome
    user_id: str | None = None
    at: datetime | None = None


def parse_ack(raw: str) -> tuple[str | None, datetime | None]:
    try:
        held = json.loads(raw)
        return str(held["user"]), datetime.fromisoformat(str(held["at"]))
    except (ValueError, KeyError, TypeError):
        return None, None


async def acknowledge(
    redis: aioredis.Redis, marker: str, who: Requester, at: datetime, *, portfolio_id: str
) -> Ack:
    """Acknowledge the open incident ``marker`` as ``who`` (once per opening), audited."""
    user_id = who.user_id
    now_ms = epoch_ms()
    source = f"{marker}:{to_ms(at)}:{user_id}"
    rows = [_row(source, ACK_KIND, acknowledge_body(marker), marker, mode="", now_ms=now_ms)]
    space = Keyspace(first=2)
    space.add_new(rows)
    held = json.dumps({"user": user_id, "at": at.isoformat()})
    entry = new_entry(
        AuditAction.ONCALL_ACKNOWLEDGED,
        AuditActor.slack(who.team_id, user_id, who.user_name),
        portfolio_id=portfolio_id,
        detail=f"acknowledged {marker}",
        at=at,
    )
    answer = await _ACK(
        redis,
        [keys.AUDIT, *space.keys()],
        [
            space.spec(),
            marker,
            held,
            now_ms,
            json.dumps([row.row() for row in rows]),
            entry.to_json(),
        ],
    )
    code, raw = int(answer[0]), text(answer[1])
    if code == -1:
        return Ack("resolved")
    by, when = parse_ack(raw)
    return Ack("already" if code == -2 else "done", by, when)


def _row(
    source: str, kind: str, body: bytes, marker: str, *, mode: str, now_ms: int
) -> NewDelivery:
    """A PagerDuty delivery raised by a person's action (not by an event)."""
    uid = ulid(now_ms, hashlib.sha256(f"{source}:{now_ms}".encode()).digest()[:10])
    return NewDelivery(
        f"dlv_{uid}",
        PAGERDUTY_TARGET,
        source[:200],
        kind,
        f"msg_{uid}",
        body.decode(),
        marker,
        mode,
    )


async def resolve_subscription(redis: aioredis.Redis, subscription_id: str) -> int:
    """A re-enabled subscription's disable alert is resolved: PagerDuty ``resolve``, once.

    The deliveries made (0 when no alert was open for it)."""
    now_ms = epoch_ms()
    marker = subscription_key(subscription_id)
    rows = [_row(marker, RESOLVE_KIND, resolve_body(marker), marker, mode=CLOSE, now_ms=now_ms)]
    space = Keyspace()
    space.add_new(rows)
    created = await _RESOLVE(
        redis, space.keys(), [space.spec(), now_ms, json.dumps([row.row() for row in rows])]
    )
    return int(created)
