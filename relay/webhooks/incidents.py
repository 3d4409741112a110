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

from relay.core.clock import epoch_ms, to_ms
from relay.store.connection import text
from relay.store.scripts import LuaScript
from relay.webhooks.fanout import alert_rows
from relay.webhooks.keyspace import Keyspace
from relay.webhooks.oncall import PAGERDUTY_TARGET, Alert, acknowledge_body

_ACK = LuaScript("oncall_ack.lua")
ACK_KIND = "relay.oncall_acknowledged"

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


async def acknowledge(redis: aioredis.Redis, marker: str, user_id: str, at: datetime) -> Ack:
    """Acknowledge the open incident ``marker`` as ``user_id`` (once per opening)."""
    now_ms = epoch_ms()
    alert = Alert(PAGERDUTY_TARGET, acknowledge_body(marker), marker, "")
    digest = hashlib.sha256(f"{marker}:{to_ms(at)}:{user_id}".encode()).hexdigest()
    rows = alert_rows([alert], source_id=f"ack_{digest[:20]}", kind=ACK_KIND, now_ms=now_ms)
    space = Keyspace()
    space.add_new(rows)
    held = json.dumps({"user": user_id, "at": at.isoformat()})
    answer = await _ACK(
        redis,
        space.keys(),
        [space.spec(), marker, held, now_ms, json.dumps([row.row() for row in rows])],
    )
    code, raw = int(answer[0]), text(answer[1])
    if code == -1:
        return Ack("resolved")
    who, when = parse_ack(raw)
    return Ack("already" if code == -2 else "done", who, when)
