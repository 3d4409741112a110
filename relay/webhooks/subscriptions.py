"""Webhook subscriptions in Redis: create, read, page, patch, delete, rotate the secret.

A subscription is a hash at ``keys.subscription(id)``, and a member of one routing set
per event type it wants (``keys.subscriptions_by_type``), enabled or not: the fan-out
makes a disabled one's deliveries ``skipped`` rather than dropping its events;
and every change bumps ``keys.SUBSCRIPTIONS_VERSION`` in the same Lua step so the
dispatcher's cached routing table is never silently stale. URL safety (SSRF) is
checked by the callers, which know the settings and the resolver.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from relay.core.audit import ADMIN, AuditAction, AuditActor, AuditEntry, new_entry
from relay.core.clock import epoch_ms, utc_now
from relay.core.ids import new_id
from relay.store import keys
from relay.store.audit import entry_arg
from relay.store.connection import text, text_map
from relay.store.paging import page_ids
from relay.store.scripts import LuaScript
from relay.webhooks.incidents import resolve_subscription
from relay.webhooks.keyspace import ROUTABLE_TYPES, Keyspace
from relay.webhooks.models import ALL_EVENTS, EVENT_TYPES, Subscription, TargetKind
from relay.webhooks.secrets import MAX_PREVIOUS, ROTATION_GRACE_MS, new_secret

MAX_URL_LENGTH = 2048
MAX_IN_FLIGHT = 100

_SAVE = LuaScript("webhook_save_subscription.lua")
_DELETE = LuaScript("webhook_delete_subscription.lua")
_ROTATE = LuaScript("webhook_rotate_secret.lua")
_ROUTES = LuaScript("webhook_routes.lua")


def _one_subscription(sid: str) -> Keyspace:
    """The layout for one subscription, after the audit log (KEYS[1])."""
    space = Keyspace(first=2)
    space.add_subscriptions([sid])
    return space


def normalise_events(events: list[str]) -> list[str]:
    """Known event types (or ``*``), deduplicated in order; ``*`` absorbs the rest."""
    unknown = [e for e in events if e != ALL_EVENTS and e not in EVENT_TYPES]
    if unknown:
        allowed = ", ".join(sorted(EVENT_TYPES))
        raise ValueError(f"unknown event type {unknown[0]!r}; use one of {allowed}, or '*'")
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


def _where(url: str) -> str:
    """A subscriber URL as the audit log shows it: scheme, host and port only (user info,
    a path or a query may carry the subscriber's own token)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port is not None else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}"
    except ValueError:  # checked before it is saved; an odd one is still not shown whole
        return "url"


def _patch_detail(patch: SubscriptionPatch) -> str:
    changed = []
    if patch.url is not None:
        changed.append(f"url {_where(patch.url)}")
    if patch.events is not None:
        changed.append(f"events {','.join(patch.events)}")
    if patch.enabled is not None:
        changed.append(f"enabled {str(patch.enabled).lower()}")
    rest = sorted(set(patch.model_fields_set) - {"url", "events", "enabled"})
    return "; ".join(changed + rest)


def _entry(
    action: AuditAction, sid: str, detail: str | None, actor: AuditActor = ADMIN
) -> AuditEntry:
    return new_entry(action, actor, subscription_id=sid, detail=detail)


class TooManySecrets(Exception):
    """A rotation refused: it would push a secret still inside its grace out of signing."""


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """Which subscriptions (enabled or disabled) want each event type, as of ``version``."""

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

    async def _save(
        self,
        sid: str,
        enabled: bool,
        events: list[str],
        audit: AuditEntry | None,
        **fields: str,
    ) -> None:
        flat = [part for pair in fields.items() for part in pair]
        space = _one_subscription(sid)
        await _SAVE(
            self.redis,
            [keys.AUDIT, *space.keys()],
            [
                space.spec(),
                sid,
                "1" if enabled else "0",
                json.dumps(events),
                *flat,
                entry_arg(audit),
            ],
        )

    async def _fields(self, sid: str) -> dict[str, str] | None:
        raw = text_map(await self.redis.hgetall(keys.subscription(sid)))
        if raw.get("kind") != TargetKind.WEBHOOK:
            return None
        return raw

    async def create(
        self, data: SubscriptionCreate, *, now_ms: int | None = None, actor: AuditActor = ADMIN
    ) -> Subscription:
        """A new enabled subscription; the answer carries its secret."""
        sid, now = new_id("sub"), str(now_ms or epoch_ms())
        extra = {"maxInFlight": str(data.maxInFlight)} if data.maxInFlight else {}
        detail = f"{_where(data.url)}; events {','.join(data.events)}"
        audit = _entry(AuditAction.SUBSCRIPTION_CREATED, sid, detail, actor)
        await self._save(
            sid,
            True,
            data.events,
            audit,
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

    async def route_disabled(self) -> int:
        """Put every disabled subscription back in the routing sets; how many there were.

        A disabled subscription stays routed, so its events become skipped deliveries
        (recoverable once it is enabled). One disabled by an earlier version was taken out
        of the routing sets; saving it again as it is routes it. Idempotent, no audit entry.
        """
        count, cursor = 0, None
        while True:
            page, cursor = await self.page(cursor=cursor, limit=200)
            for current in page:
                if not current.enabled:
                    await self._save(current.id, False, current.events, None)
                    count += 1
            if cursor is None:
                return count

    async def update(
        self,
        sid: str,
        patch: SubscriptionPatch,
        *,
        now_ms: int | None = None,
        actor: AuditActor = ADMIN,
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
        audit = _entry(AuditAction.SUBSCRIPTION_CHANGED, sid, _patch_detail(patch), actor)
        await self._save(sid, enabled, patch.events or current.events, audit, **changes)
        if enabled and not current.enabled:
            await resolve_subscription(self.redis, sid, utc_now())  # its disable alert, if open
        return await self.get(sid)

    async def delete(self, sid: str, *, actor: AuditActor = ADMIN) -> bool:
        if await self._fields(sid) is None:
            return False
        audit = _entry(AuditAction.SUBSCRIPTION_DELETED, sid, None, actor)
        space = _one_subscription(sid)
        deleted = await _DELETE(
            self.redis, [keys.AUDIT, *space.keys()], [space.spec(), sid, entry_arg(audit)]
        )
        return bool(deleted)

    async def rotate_secret(
        self, sid: str, *, now_ms: int | None = None, actor: AuditActor = ADMIN
    ) -> Subscription | None:
        """A new secret; every earlier one keeps signing until 24 hours after it was replaced.

        Raises :class:`TooManySecrets` when ``MAX_PREVIOUS`` earlier secrets still sign.
        """
        if await self._fields(sid) is None:
            return None
        now = now_ms or epoch_ms()
        # The detail never holds a secret, old or new: only that one was replaced.
        audit = _entry(AuditAction.SUBSCRIPTION_SECRET_ROTATED, sid, "new signing secret", actor)
        done = await _ROTATE(
            self.redis,
            [keys.subscription(sid), keys.AUDIT],
            [
                new_secret(),
                str(now + ROTATION_GRACE_MS),
                str(now),
                str(MAX_PREVIOUS),
                entry_arg(audit),
            ],
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
            None,  # the relay's own target, made at start: not an admin change
            id=target_id,
            kind=kind.value,
            url="",
            secret="",
            createdAt=now,
            updatedAt=now,
            maxInFlight=str(max_in_flight),
        )

    async def routing_table(self) -> RoutingTable:
        """Which subscriptions want each event type (enabled or not), read in one step."""
        routing_sets = [keys.subscriptions_by_type(t) for t in ROUTABLE_TYPES]
        version, *members = await _ROUTES(self.redis, [keys.SUBSCRIPTIONS_VERSION, *routing_sets])
        by_type = {
            t: frozenset(text(m) for m in ids)
            for t, ids in zip(ROUTABLE_TYPES, members, strict=True)
        }
        return RoutingTable(version=text(version), by_type=by_type)
