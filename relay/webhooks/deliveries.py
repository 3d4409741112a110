"""Delivery records: read, page by subscription and status, replay, recover, retention.

A delivery hash (``keys.delivery(id)``) holds its event body, status and every
attempt (``a1``, ``a2``, ...). Ids are ``dlv_`` + a ULID whose time is the
event's, so each index (all, by status, by subscription, both) is in time order
and "everything since T" is a lexical range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import redis.asyncio as aioredis

from relay.core.audit import ADMIN, AuditAction, AuditActor, AuditEntry, new_entry
from relay.core.clock import epoch_ms, to_ms
from relay.core.ids import ulid
from relay.store import keys
from relay.store.audit import entry_arg
from relay.store.connection import text, text_map
from relay.store.paging import page_ids
from relay.store.scripts import LuaScript
from relay.webhooks.keyspace import Keyspace
from relay.webhooks.models import Delivery, DeliveryStatus

RETENTION_MS = 7 * 24 * 3600 * 1000
MAX_PER_SUBSCRIPTION = 10_000
_BATCH = 500
_REQUEUE_TRIES = 3  # a delivery made between the read of its owner and the script: ask again

_REQUEUE = LuaScript("webhook_requeue.lua")
_SWEEP = LuaScript("webhook_sweep.lua")


def index_for(subscription_id: str | None, status: DeliveryStatus | None) -> str:
    """The index that lists exactly the deliveries matching both filters."""
    if subscription_id is None:
        return keys.DELIVERIES if status is None else keys.deliveries_by_status(status)
    return keys.subscription_deliveries(subscription_id, status)


def lower_bound(since: datetime) -> str:
    """The smallest delivery id of an event at or after ``since``."""
    return "dlv_" + ulid(to_ms(since), bytes(10))


@dataclass(frozen=True, slots=True)
class RequeueOutcome:
    """What a replay or a recovery did: ``queued`` ids, and the others with why not."""

    queued: list[str]
    refused: dict[str, str]


class SubscriptionDisabled(Exception):
    """A recovery refused: the subscription is still disabled (its skipped deliveries wait)."""

    def __init__(self, subscription_id: str) -> None:
        super().__init__(
            f"subscription {subscription_id} is disabled; enable it first, then recover"
            " its skipped deliveries"
        )
        self.subscription_id = subscription_id


# Why a replay was refused, in the words both the admin API and the CLI use.
REPLAY_REFUSALS = {
    "not_final": "the delivery is still queued; it can be replayed once it succeeded or died",
    "subscription_deleted": "its subscription was deleted",
    "subscription_disabled": "its subscription is disabled; enable it first",
}


class DeliveryStore:
    """Delivery records on one Redis client."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def get(self, delivery_id: str) -> Delivery | None:
        raw = text_map(await self.redis.hgetall(keys.delivery(delivery_id)))
        return Delivery.from_hash(raw) if raw.get("id") else None

    async def page(
        self,
        *,
        subscription_id: str | None = None,
        status: DeliveryStatus | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[Delivery], str | None]:
        """Newest first, filtered; entries swept meanwhile are skipped."""
        index = index_for(subscription_id, status)
        ids, next_cursor = await page_ids(self.redis, index, cursor=cursor, limit=limit)
        pipe = self.redis.pipeline(transaction=False)
        for did in ids:
            pipe.hgetall(keys.delivery(did))
        found = [text_map(raw) for raw in await pipe.execute()]
        return [Delivery.from_hash(fields) for fields in found if fields.get("id")], next_cursor

    async def _owned(self, ids: list[str], *, first: int = 1) -> Keyspace:
        """A keyspace with ``ids`` and the subscriptions they belong to (as read now), its
        layout starting at KEYS[``first``]."""
        pipe = self.redis.pipeline(transaction=False)
        for did in ids:
            pipe.hget(keys.delivery(did), "subscriptionId")
        owners = await pipe.execute()
        space = Keyspace(first=first)
        space.add_deliveries(ids)
        space.add_subscriptions(text(o) for o in owners if o is not None)
        return space

    async def _requeue(
        self, ids: list[str], *, only_dead: bool, audit: AuditEntry
    ) -> RequeueOutcome:
        """Queue ``ids`` again; ``audit`` is appended (with how many) when any was."""
        queued: list[str] = []
        refused: dict[str, str] = {}
        for _ in range(_REQUEUE_TRIES):
            if not ids:
                break
            space = await self._owned(ids, first=2)  # after the audit log, KEYS[1]
            words = await _REQUEUE(
                self.redis,
                [keys.AUDIT, *space.keys()],
                [space.spec(), str(epoch_ms()), "1" if only_dead else "0", *ids, entry_arg(audit)],
            )
            again = []
            for did, word in zip(ids, (text(w) for w in words), strict=True):
                if word == "queued":
                    queued.append(did)
                elif word == "changed":
                    again.append(did)
                elif word != "passed":
                    refused[did] = word
            ids = again
        if ids:
            raise RuntimeError(f"deliveries kept changing owner during a requeue: {ids[:3]}")
        return RequeueOutcome(queued, refused)

    async def replay(self, delivery_id: str, *, actor: AuditActor = ADMIN) -> str:
        """Queue a final or skipped delivery again (same webhook-id, fresh schedule).

        Returns ``queued``, or why not: ``missing``, ``not_final``,
        ``subscription_deleted``, ``subscription_disabled``.
        """
        owner = await self.redis.hget(keys.delivery(delivery_id), "subscriptionId")
        audit = new_entry(
            AuditAction.DELIVERY_REPLAYED,
            actor,
            subscription_id=text(owner) if owner is not None else None,
            detail=delivery_id,
        )
        outcome = await self._requeue([delivery_id], only_dead=False, audit=audit)
        return "queued" if outcome.queued else outcome.refused[delivery_id]

    async def recover_since(
        self, since: datetime, *, subscription_id: str | None = None, actor: AuditActor = ADMIN
    ) -> int:
        """Queue again every dead or skipped delivery of an event at or after ``since``.

        Returns how many were queued. A skipped delivery of a subscription still disabled
        stays skipped; for one subscription that is still disabled, raises
        :class:`SubscriptionDisabled` before anything is done.
        """
        if subscription_id is not None:
            enabled = await self.redis.hget(keys.subscription(subscription_id), "enabled")
            if enabled is not None and text(enabled) != "1":
                raise SubscriptionDisabled(subscription_id)
        total = 0
        for status in (s for s in DeliveryStatus if s.is_recoverable):
            total += await self._recover_index(
                index_for(subscription_id, status), since, subscription_id, status, actor
            )
        return total

    async def _recover_index(
        self,
        index: str,
        since: datetime,
        subscription_id: str | None,
        status: DeliveryStatus,
        actor: AuditActor,
    ) -> int:
        start, total = "[" + lower_bound(since), 0
        while True:
            raw = await self.redis.zrangebylex(index, start, "+", start=0, num=_BATCH)
            ids = [text(i) for i in raw]
            if not ids:
                return total
            # One entry per batch that queued any: each batch is its own atomic step.
            audit = new_entry(
                AuditAction.DELIVERIES_RECOVERED,
                actor,
                subscription_id=subscription_id,
                detail=f"{status.value} deliveries since {since.isoformat()}",
            )
            total += len((await self._requeue(ids, only_dead=True, audit=audit)).queued)
            start = "(" + ids[-1]

    async def sweep(
        self,
        *,
        now_ms: int | None = None,
        subscription_ids: Sequence[str] = (),
        per_subscription: int = MAX_PER_SUBSCRIPTION,
    ) -> int:
        """Delete final and skipped deliveries past retention, and beyond the per-subscription
        cap."""
        now = now_ms if now_ms is not None else epoch_ms()
        cutoff = "dlv_" + ulid(now - RETENTION_MS, bytes(10))
        old = [
            text(i)
            for i in await self.redis.zrangebylex(
                keys.DELIVERIES, "-", "(" + cutoff, start=0, num=_BATCH
            )
        ]
        removed = await self._delete_final(old)
        for sid in subscription_ids:
            index = keys.subscription_deliveries(sid)
            excess = await self.redis.zcard(index) - per_subscription
            if excess > 0:
                oldest = await self.redis.zrangebylex(
                    index, "-", "+", start=0, num=min(excess, _BATCH)
                )
                removed += await self._delete_final([text(i) for i in oldest])
        return removed

    async def _delete_final(self, ids: list[str]) -> int:
        if not ids:
            return 0
        space = await self._owned(ids)
        return int(await _SWEEP(self.redis, space.keys(), [space.spec(), *ids]))
