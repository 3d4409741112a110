"""Webhook subscriptions in Redis: create, read, page, patch, delete, rotate the secret.

A subscription is a hash at ``keys.subscription(id)``; enabled ones are also
members of one routing set per event type they want (``keys.subscriptions_by_type``),
and every change bumps ``keys.SUBSCRIPTIONS_VERSION`` in the same Lua step so the
dispatcher's cached routing table is never silently stale. URL safety (SSRF) is
checked by the callers, which know the settings and the resolver.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from relay.core.clock import epoch_ms
from relay.core.ids import new_id
from relay.store import keys
from relay.store.connection import text, text_map
from relay.store.paging import page_ids
from relay.webhooks.lua import Scripts
from relay.webhooks.models import ALL_EVENTS, EVENT_TYPES, Subscription, TargetKind
from relay.webhooks.secrets import MAX_PREVIOUS, ROTATION_GRACE_MS, new_secret

MAX_URL_LENGTH = 2048
MAX_IN_FLIGHT = 100


def normalise_events(events: list[str]) -> list[str]:
    """Known event types (or ``*``), deduplicated in order; ``*`` absorbs the rest."""
    unknown = [e for e in events if e != ALL_EVENTS and e not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}; use one of the SPEC types or '*'")
    if ALL_EVENTS in events:
        return [ALL_EVENTS]
    return list(dict.fromkeys(events))


class SubscriptionCreate(BaseModel):
    """Body of ``POST /v1/subscriptions``."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    events: list[str] = Field(min_length=1, max_length=len(EVENT_TYPES) + 1)
    description: str | None = Field(default=None, max_length=500)
    maxInFlight: int | None = Field(default=None, ge=1, le=MAX_IN_FLIGHT)

    _events = field_validator("events")(normalise_events)


class SubscriptionPatch(BaseModel):
    """Body of ``PATCH /v1/subscriptions/{id}``: any of url, events, enabled (and extras)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_LENGTH)
    events: list[str] | None = Field(default=None, min_length=1, max_length=len(EVENT_TYPES) + 1)
    enabled: bool | None = None
    description: str | None = Field(default=None, max_length=500)
    maxInFlight: int | None = Field(default=None, ge=1, le=MAX_IN_FLIGHT)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else normalise_events(value)

    @model_validator(mode="after")
    def _not_empty(self) -> SubscriptionPatch:
        if not self.model_fields_set:
            raise ValueError("give at least one of url, events, enabled")
        return self


class TooManySecrets(Exception):
    """A rotation refused: it would push a secret still inside its grace out of signing."""


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """Which enabled subscriptions want each event type, as of ``version``."""

    version: str
    by_type: dict[str, frozenset[str]]

    def matching(self, event_type: str) -> list[str]:
        """Subscription ids for ``event_type`` (exact or ``*``), sorted for determinism."""
        exact = self.by_type.get(event_type, frozenset())
        return sorted(exact | self.by_type.get(ALL_EVENTS, frozenset()))


class SubscriptionStore:
    """Subscriptions on one Redis client."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._scripts = Scripts(redis)

    async def _save(self, sid: str, enabled: bool, events: list[str], **fields: str) -> None:
        flat = [part for pair in fields.items() for part in pair]
        await self._scripts.save_subscription(
            keys=[keys.subscription(sid)],
            args=[sid, "1" if enabled else "0", json.dumps(events), *flat],
        )

    async def _fields(self, sid: str) -> dict[str, str] | None:
        raw = text_map(await self.redis.hgetall(keys.subscription(sid)))
        if raw.get("kind") != TargetKind.WEBHOOK:
            return None
        return raw

    async def create(self, data: SubscriptionCreate, *, now_ms: int | None = None) -> Subscription:
        """A new enabled subscription; the answer carries its secret."""
        sid, now = new_id("sub"), str(now_ms or epoch_ms())
        extra = {"maxInFlight": str(data.maxInFlight)} if data.maxInFlight else {}
        await self._save(
            sid,
            True,
            data.events,
            id=sid,
            kind=TargetKind.WEBHOOK.value,
            url=data.url,
            description=data.description or "",
            secret=new_secret(),
            createdAt=now,
            updatedAt=now,
            **extra,
        )
        created = await self.get(sid, with_secret=True)
        assert created is not None
        return created

    async def get(self, sid: str, *, with_secret: bool = False) -> Subscription | None:
        fields = await self._fields(sid)
        return Subscription.from_hash(fields, with_secret=with_secret) if fields else None

    async def page(
        self, *, cursor: str | None, limit: int
    ) -> tuple[list[Subscription], str | None]:
        """Newest first, ``limit`` at a time after ``cursor``."""
        ids, next_cursor = await page_ids(
            self.redis, keys.SUBSCRIPTIONS, cursor=cursor, limit=limit
        )
        pipe = self.redis.pipeline(transaction=False)
        for sid in ids:
            pipe.hgetall(keys.subscription(sid))
        found = [text_map(raw) for raw in await pipe.execute()]
        subscriptions = [
            Subscription.from_hash(fields)
            for fields in found
            if fields.get("kind") == TargetKind.WEBHOOK
        ]
        return subscriptions, next_cursor

    async def update(
        self, sid: str, patch: SubscriptionPatch, *, now_ms: int | None = None
    ) -> Subscription | None:
        """Apply ``patch``; None when ``sid`` is unknown."""
        fields = await self._fields(sid)
        if fields is None:
            return None
        current = Subscription.from_hash(fields)
        changes = {"updatedAt": str(now_ms or epoch_ms())}
        if patch.url is not None:
            changes["url"] = patch.url
        if "description" in patch.model_fields_set:
            changes["description"] = patch.description or ""
        if patch.maxInFlight is not None:
            changes["maxInFlight"] = str(patch.maxInFlight)
        enabled = current.enabled if patch.enabled is None else patch.enabled
        await self._save(sid, enabled, patch.events or current.events, **changes)
        return await self.get(sid)

    async def delete(self, sid: str) -> bool:
        if await self._fields(sid) is None:
            return False
        deleted = await self._scripts.delete_subscription(keys=[keys.subscription(sid)], args=[sid])
        return bool(deleted)

    async def rotate_secret(self, sid: str, *, now_ms: int | None = None) -> Subscription | None:
        """A new secret; every earlier one keeps signing until 24 hours after it was replaced.

        Raises :class:`TooManySecrets` when ``MAX_PREVIOUS`` earlier secrets still sign.
        """
        if await self._fields(sid) is None:
            return None
        now = now_ms or epoch_ms()
        done = await self._scripts.rotate_secret(
            keys=[keys.subscription(sid)],
            args=[new_secret(), str(now + ROTATION_GRACE_MS), str(now), str(MAX_PREVIOUS)],
        )
        if int(done) < 0:
            raise TooManySecrets(
                f"{MAX_PREVIOUS} earlier secrets still sign (each for 24 h after it was replaced);"
                " rotate again when the oldest expires"
            )
        return await self.get(sid, with_secret=True)

    async def ensure_target(self, target_id: str, kind: TargetKind, max_in_flight: int) -> None:
        """Create (or refresh) an internal delivery target such as the on-call Slack channel."""
        now = str(epoch_ms())
        await self._save(
            target_id,
            True,
            [],
            id=target_id,
            kind=kind.value,
            url="",
            secret="",
            createdAt=now,
            updatedAt=now,
            maxInFlight=str(max_in_flight),
        )

    async def routing_table(self) -> RoutingTable:
        types = [*sorted(EVENT_TYPES), ALL_EVENTS]
        reply = await self._scripts.routes(keys=[keys.SUBSCRIPTIONS], args=[*types])
        version, *members = reply
        by_type = {
            t: frozenset(text(m) for m in ids) for t, ids in zip(types, members, strict=True)
        }
        return RoutingTable(version=text(version), by_type=by_type)
