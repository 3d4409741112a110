"""``relay.test``: one signed event for one subscription, through the normal delivery path.

The delivery is created by the same Lua helper fan-out uses (``create_all``), so
the dispatcher claims, signs, sends, retries and records it like any other.
"""

from __future__ import annotations

import json
from typing import Literal

import redis.asyncio as aioredis

from relay.core.audit import ADMIN, AuditAction, AuditActor, new_entry
from relay.core.clock import epoch_ms, to_ms
from relay.core.events import TEST_EVENT_TYPE, RelayTestData, RelayTestEvent
from relay.core.ids import ulid
from relay.store import keys
from relay.store.audit import entry_arg
from relay.store.scripts import LuaScript
from relay.webhooks.keyspace import Keyspace, NewDelivery

_CREATE = LuaScript("webhook_create_for_subscription.lua")

ProbeRefusal = Literal["missing", "disabled"]


def delivery_row(event: RelayTestEvent, subscription_id: str) -> NewDelivery:
    """The delivery of ``event`` for ``subscription_id``, as fan-out would make it."""
    uid = ulid(to_ms(event.timestamp))
    body = event.body().decode()
    return NewDelivery(f"dlv_{uid}", subscription_id, event.id, TEST_EVENT_TYPE, f"msg_{uid}", body)


async def send_test_event(
    redis: aioredis.Redis, subscription_id: str, *, actor: AuditActor = ADMIN
) -> str | ProbeRefusal:
    """Queue a ``relay.test`` delivery; its id, or why not (no such or a disabled subscription).

    A queued one is audited (``subscription.tested``, by ``actor``) in the same step."""
    event = RelayTestEvent(data=RelayTestData(subscriptionId=subscription_id))
    row = delivery_row(event, subscription_id)
    space = Keyspace(first=2)  # after the audit log, KEYS[1]
    space.add_new([row])
    audit = new_entry(
        AuditAction.SUBSCRIPTION_TESTED,
        actor,
        subscription_id=subscription_id,
        detail=row.delivery_id,
    )
    created = int(
        await _CREATE(
            redis,
            [keys.AUDIT, *space.keys()],
            [space.spec(), subscription_id, epoch_ms(), json.dumps([row.row()]), entry_arg(audit)],
        )
    )
    if created == -1:
        return "missing"
    if created == -2:
        return "disabled"
    return row.delivery_id
