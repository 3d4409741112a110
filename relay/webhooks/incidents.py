"""Acting on an open on-call incident: acknowledge it, note a retry or pause, resolve it.

The incident's open marker (``keys.oncall_open``) is the truth of whether it is open:
fan-out sets it on a failure and deletes it on the next completion. Each action here is
one Lua step that checks the marker, makes the change to the alert's Slack message
(:mod:`relay.webhooks.alert_card`) with the delivery that renders it, and (for an
acknowledge) the PagerDuty ``acknowledge`` delivery and who acknowledged, so a second
click, or a click on a resolved incident, sends nothing. People's actions are audited
in the same step.
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
from relay.webhooks.alert_card import (
    Acknowledge,
    AlertChange,
    Did,
    Resolve,
    Seed,
    change_json,
    wake_body,
)
from relay.webhooks.keyspace import Keyspace, NewDelivery
from relay.webhooks.oncall import (
    CLOSE,
    PAGERDUTY_TARGET,
    SLACK_TARGET,
    acknowledge_body,
    resolve_body,
    subscription_key,
)

_ACK = LuaScript("oncall_ack.lua")
_STEP = LuaScript("oncall_step.lua")
_RESOLVE = LuaScript("oncall_resolve.lua")
ACK_KIND = "relay.oncall_acknowledged"
STEP_KIND = "relay.oncall_action"
RESOLVE_KIND = "relay.subscription_reenabled"

AckOutcome = Literal["done", "resolved", "already"]
StepAction = Literal["retried", "paused"]
_STEPS: dict[StepAction, tuple[str, AuditAction]] = {
    "retried": ("Retry requested", AuditAction.ONCALL_RETRIED),
    "paused": ("Paused", AuditAction.ONCALL_PAUSED),
}


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
    redis: aioredis.Redis,
    marker: str,
    who: Requester,
    at: datetime,
    *,
    portfolio_id: str,
    seed: Seed | None = None,
) -> Ack:
    """Acknowledge the open incident ``marker`` as ``who`` (once per opening), audited.

    ``seed``: the clicked message, kept as the alert if it was posted before alerts were.
    """
    user_id = who.user_id
    now_ms = epoch_ms()
    source = f"{marker}:{to_ms(at)}:{user_id}"
    shown = Acknowledge(user=user_id, at=at.isoformat(), seed=seed)
    rows = [
        _row(PAGERDUTY_TARGET, source, ACK_KIND, acknowledge_body(marker), marker, now_ms=now_ms),
        _slack_row(source, ACK_KIND, marker, shown, now_ms=now_ms),
    ]
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


async def note_step(
    redis: aioredis.Redis,
    marker: str,
    action: StepAction,
    who: Requester,
    at: datetime,
    *,
    portfolio_id: str,
    detail: str,
    seed: Seed | None = None,
) -> bool:
    """A retry or pause started from the alert: shown on it and audited (False: the
    incident was resolved meanwhile, and nothing was written)."""
    now_ms = epoch_ms()
    what, audited = _STEPS[action]
    source = f"{marker}:{to_ms(at)}:{who.user_id}:{action}"
    shown = Did(what=what, user=who.user_id, at=at.isoformat(), seed=seed)
    rows = [_slack_row(source, STEP_KIND, marker, shown, now_ms=now_ms)]
    space = Keyspace(first=2)
    space.add_new(rows)
    entry = new_entry(
        audited,
        AuditActor.slack(who.team_id, who.user_id, who.user_name),
        portfolio_id=portfolio_id,
        detail=f"{action} from the alert {marker}: {detail}",
        at=at,
    )
    written = await _STEP(
        redis,
        [keys.AUDIT, *space.keys()],
        [space.spec(), marker, now_ms, json.dumps([row.row() for row in rows]), entry.to_json()],
    )
    return int(written) >= 0


def _row(
    target: str,
    source: str,
    kind: str,
    body: bytes,
    marker: str,
    *,
    mode: str = "",
    change: str = "",
    now_ms: int,
) -> NewDelivery:
    """An on-call delivery raised by a person's action or a re-enable (not by an event)."""
    digest = hashlib.sha256(f"{source}:{target}:{now_ms}".encode()).digest()
    uid = ulid(now_ms, digest[:10])
    return NewDelivery(
        f"dlv_{uid}",
        target,
        source[:200],
        kind,
        f"msg_{uid}",
        body.decode(),
        marker,
        mode,
        alert=change,
    )


def _slack_row(
    source: str, kind: str, marker: str, change: AlertChange, *, mode: str = "", now_ms: int
) -> NewDelivery:
    """The delivery that shows ``change`` in the alert's Slack message."""
    return _row(
        SLACK_TARGET,
        source,
        kind,
        wake_body(marker),
        marker,
        mode=mode,
        change=change_json(change),
        now_ms=now_ms,
    )


async def resolve_subscription(redis: aioredis.Redis, subscription_id: str, at: datetime) -> int:
    """A re-enabled subscription's disable alert is resolved: PagerDuty ``resolve`` and its
    Slack alert shown resolved, once. The deliveries made (0 when no alert was open for it)."""
    now_ms = epoch_ms()
    marker = subscription_key(subscription_id)
    resolved = Resolve(note="the subscription was re-enabled", at=at.isoformat())
    rows = [
        _row(
            PAGERDUTY_TARGET,
            marker,
            RESOLVE_KIND,
            resolve_body(marker),
            marker,
            mode=CLOSE,
            now_ms=now_ms,
        ),
        _slack_row(marker, RESOLVE_KIND, marker, resolved, mode=CLOSE, now_ms=now_ms),
    ]
    space = Keyspace()
    space.add_new(rows)
    created = await _RESOLVE(
        redis, space.keys(), [space.spec(), now_ms, json.dumps([row.row() for row in rows])]
    )
    return int(created)
