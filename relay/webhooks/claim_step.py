"""One scheduling step of a subscription's queue: record finished attempts, claim due work.

Claims are leases: a claimed delivery sits in the subscription's in-flight set
until its lease ends, and any worker's next step puts it back in the queue if no
result arrived by then (its worker died). The subscription's concurrency cap is
counted in Redis, so it holds across every worker process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from relay.core.clock import epoch_ms
from relay.store import keys
from relay.store.batching import Coalescer
from relay.store.connection import text
from relay.store.delivery_stats import KEEP_S, minute_of
from relay.store.scripts import LuaScript
from relay.webhooks.keyspace import Keyspace, NewDelivery
from relay.webhooks.models import TargetKind
from relay.webhooks.secrets import SigningKeys, parse_previous

LEASE_MS = 60_000  # well past the 10 s send timeout: a live worker never loses a lease
_MAX_STEPS = 64  # steps per script call: keeps any one call short
_FLUSHERS = 2  # calls in Redis at once: a step never waits a whole round trip for a slot
_DRAIN = 100  # deliveries a step of a disabled subscription turns dead (webhook_steps.lua)

_STEPS = LuaScript("webhook_steps.lua")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a subscription's deliveries go, as read in the same step as the claim."""

    id: str
    kind: TargetKind
    url: str
    enabled: bool
    cap: int
    signing: SigningKeys | None
    failing_since_ms: int | None


@dataclass(frozen=True, slots=True)
class Claimed:
    delivery_id: str
    webhook_id: str
    body: bytes
    tries: int
    event_type: str
    traceparent: str | None = None  # its event's trace: the attempt's span continues it


@dataclass(frozen=True, slots=True)
class Finished:
    """An attempt's result to record: the new status and, for ``failed``, the next due time."""

    delivery_id: str
    status: str
    next_due_ms: int | None
    attempt_json: str


@dataclass(slots=True)
class Report:
    """Everything one step records for a subscription."""

    finished: list[Finished] = field(default_factory=list)
    health: str = ""  # "ok" after a success, "fail" after a failure, "" if nothing new
    throttle_until_ms: int = 0
    disable: str = ""  # a reason to disable the subscription
    alerts: list[NewDelivery] = field(default_factory=list)  # deliveries to on-call targets
    released: list[str] = field(default_factory=list)  # claimed but unsent: due again now


@dataclass(frozen=True, slots=True)
class StepReply:
    target: Target | None  # None: the subscription no longer exists
    claimed: list[Claimed]
    # The head of its due set after the step (up to its cap; none when disabled): what
    # its next step may claim without reading the queue first.
    ahead: list[str] = field(default_factory=list)


def _opt(raw: Any) -> str | None:
    return None if raw is None else text(raw)


def _target(sid: str, raw: list[Any], default_cap: int) -> Target | None:
    kind, enabled, cap, _throttled, url, secret, prevs, prev, prev_until, failing = (
        _opt(v) for v in raw
    )
    if kind is None:
        return None
    signing = None
    if kind == TargetKind.WEBHOOK and secret:
        previous = parse_previous(prevs)
        if prev:  # rotated before prevSecrets existed
            previous = (*previous, (prev, int(prev_until or 0)))
        signing = SigningKeys(secret, previous)
    return Target(
        id=sid,
        kind=TargetKind(kind),
        url=url or "",
        enabled=enabled == "1",
        cap=int(cap) if cap else default_cap,
        signing=signing,
        failing_since_ms=int(failing) if failing else None,
    )


def _request(
    sid: str, report: Report, *, now_ms: int, want: int, cap: int, lease_ms: int
) -> dict[str, Any]:
    """The JSON request one step of ``sid`` sends to the script (its field ``q``)."""
    return {
        "sub": sid,
        "now": now_ms,
        "lease": lease_ms,
        "want": want,
        "cap": cap,
        "health": report.health,
        "throttle": report.throttle_until_ms,
        "disable": report.disable,
        "alerts": [row.row() for row in report.alerts],
        "results": [
            [f.delivery_id, f.status, f.next_due_ms or 0, f.attempt_json] for f in report.finished
        ],
        "released": report.released,
    }


def _reply(sid: str, raw: list[Any], default_cap: int) -> StepReply:
    raw_target, raw_claimed, raw_ahead = raw
    claimed = [
        Claimed(
            text(did),
            text(wid),
            body if isinstance(body, bytes) else body.encode(),
            int(tries or 0),
            text(etype),
            _opt(trace),
        )
        for did, wid, body, tries, etype, trace in raw_claimed
    ]
    return StepReply(_target(sid, raw_target, default_cap), claimed, [text(d) for d in raw_ahead])


async def _keyspace(
    redis: aioredis.Redis,
    batch: list[tuple[str, dict[str, Any], Report]],
    ahead: dict[str, list[str]] | None = None,
) -> Keyspace:
    """Every key the steps of ``batch`` may touch.

    Beside what the reports name, a step takes deliveries out of its due set (to
    claim them, or to drain a disabled subscription) and its expired leases. For a
    subscription whose previous step saw at least as many deliveries ahead in its
    queue (``ahead``) as it wants now, those are declared without a read: work queued
    since sorts after them. Any other's queue is read here first. A delivery that turns
    up in between (or was taken by another worker) is left queued by the script for the
    next step (which it schedules at once), so a stale ``ahead`` costs a step, not work.
    """
    space = Keyspace(first=2)  # after this minute's results hash, KEYS[1]
    wants: dict[str, int] = {}  # a subscription may have several steps in one batch
    disabling: set[str] = set()
    for sid, request, report in batch:
        wants[sid] = wants.get(sid, 0) + int(request["want"])
        if report.disable:
            disabling.add(sid)
        space.add_subscriptions([sid])
        space.add_new(report.alerts)
        space.add_deliveries(f.delivery_id for f in report.finished)
        space.add_deliveries(report.released)
    known = ahead or {}
    unread: dict[str, int] = {}
    for sid, want in wants.items():
        head = known.get(sid)
        if head is not None and sid not in disabling and len(head) >= want:
            space.add_deliveries(head[:want])
        else:
            unread[sid] = want
    if not unread:
        return space
    now = max(int(request["now"]) for _, request, _ in batch)
    pipe = redis.pipeline(transaction=False)
    for sid, want in unread.items():
        pipe.hmget(keys.subscription(sid), ["kind", "enabled"])
        pipe.zrange(keys.subscription_due(sid), 0, max(_DRAIN, want) - 1)
        pipe.zrangebyscore(keys.subscription_inflight(sid), "-inf", now, start=0, num=_DRAIN)
    found = await pipe.execute()
    for (sid, want), at in zip(unread.items(), range(0, len(found), 3), strict=True):
        (kind, enabled), due, expired = found[at : at + 3]
        claims = kind is not None and enabled is not None and text(enabled) == "1"
        taken = due[:want] if claims and sid not in disabling else due
        space.add_deliveries(text(d) for d in taken)
        space.add_deliveries(text(d) for d in expired)
    return space


async def _run(
    redis: aioredis.Redis,
    batch: list[tuple[str, dict[str, Any], Report]],
    default_cap: int,
    ahead: dict[str, list[str]] | None = None,
) -> list[StepReply]:
    space = await _keyspace(redis, batch, ahead)
    # The attempts it records are counted by the script itself, for the console's chart.
    results = keys.delivery_minute(minute_of(epoch_ms()))
    raw = await _STEPS(
        redis,
        [results, *space.keys()],
        [space.spec(), json.dumps([request for _, request, _ in batch]), KEEP_S],
    )
    return [_reply(sid, item, default_cap) for (sid, _, _), item in zip(batch, raw, strict=True)]


async def step(
    redis: aioredis.Redis,
    sid: str,
    report: Report,
    *,
    now_ms: int,
    want: int,
    default_cap: int,
    lease_ms: int = LEASE_MS,
) -> StepReply:
    """Record ``report`` for subscription ``sid`` and claim up to ``want`` due deliveries."""
    request = _request(sid, report, now_ms=now_ms, want=want, cap=default_cap, lease_ms=lease_ms)
    [reply] = await _run(redis, [(sid, request, report)], default_cap)
    return reply


class StepBatcher:
    """Runs the steps of every subscription of a worker together: whatever steps are
    asked for while one call is in Redis go out in the next, in one round trip.

    It remembers what each subscription's last step saw ahead in its queue, so a busy
    subscription's next step claims without reading the queue first (see _keyspace).
    """

    def __init__(
        self, redis: aioredis.Redis, *, default_cap: int, lease_ms: int = LEASE_MS
    ) -> None:
        self._redis = redis
        self._default_cap = default_cap
        self._lease_ms = lease_ms
        self._ahead: dict[str, list[str]] = {}  # subscription -> its due set's head, last seen
        # Two lanes: the steps of subscriptions whose last attempt failed go in calls of
        # their own, so a healthy subscription's step never waits behind their bookkeeping.
        self._failing: set[str] = set()
        self._lanes: dict[bool, Coalescer[tuple[str, dict[str, Any], Report], StepReply]] = {
            failing: Coalescer(self._write, max_batch=_MAX_STEPS, flushers=_FLUSHERS)
            for failing in (False, True)
        }

    @property
    def failing(self) -> frozenset[str]:
        """The subscriptions whose steps go in the failing lane now."""
        return frozenset(self._failing)

    async def step(self, sid: str, report: Report, *, now_ms: int, want: int) -> StepReply:
        """As :func:`step`, batched with the other subscriptions' steps of its lane."""
        if report.health == "fail":
            self._failing.add(sid)
        elif report.health == "ok":
            self._failing.discard(sid)
        request = _request(
            sid, report, now_ms=now_ms, want=want, cap=self._default_cap, lease_ms=self._lease_ms
        )
        return await self._lanes[sid in self._failing].submit((sid, request, report))

    async def _write(self, batch: list[tuple[str, dict[str, Any], Report]]) -> list[StepReply]:
        # Taken out: once these steps ran, only their replies say what is ahead.
        ahead = {sid: self._ahead.pop(sid) for sid, _, _ in batch if sid in self._ahead}
        replies = await _run(self._redis, batch, self._default_cap, ahead)
        for (sid, _, _), reply in zip(batch, replies, strict=True):
            if reply.target is not None and reply.target.enabled:
                self._ahead[sid] = reply.ahead
            else:  # deleted or disabled: nothing of it is kept (a re-enabled one starts over)
                self._failing.discard(sid)
        return replies
