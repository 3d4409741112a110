"""Pending confirmations and approval requests in Redis (docs/contract.md §8).

A preview's buttons carry an opaque token; the token names a hash here that holds
the command it would queue. Every decision is one Lua step
(``confirm_click.lua``, ``approval_decide.lua``) that changes the state, appends
the audit entry and, for approvals, the event, all at once: the first click wins
on any number of web processes, and a later one learns what was decided.
Queuing itself reuses the enqueue's idempotence (a fixed request id and a trigger
id derived from the token), so a retried or concurrent click never queues twice.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from relay.core.commands import QueuedCommand, Requester
from relay.store import keys
from relay.store.connection import text, text_map
from relay.store.scripts import LuaScript

PREVIEW_TTL_S = 600  # a preview expires after 10 minutes
DECIDED_KEEP_S = 24 * 3600  # a decided confirmation answers later clicks this long
APPROVAL_KEEP_S = 7 * 24 * 3600  # a decided approval request says who decided this long
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")

_CLICK = LuaScript("confirm_click.lua")
_DECIDE = LuaScript("approval_decide.lua")


def new_token() -> str:
    """An opaque, unguessable button value."""
    return secrets.token_urlsafe(24)


def is_token(value: object) -> bool:
    """A well-formed token: anything else is refused before Redis is asked."""
    return isinstance(value, str) and bool(_TOKEN.match(value))


@dataclass(frozen=True)
class Pending:
    """A preview awaiting its requester's click."""

    token: str
    command: QueuedCommand
    channel_id: str | None
    approval_token: str | None  # set: the rule requires a second person's approval
    facts: str  # what the preview showed, for the approval request (bounded text)
    state: str = "pending"

    def fields(self) -> dict[str, str]:
        return {
            "user_id": self.command.requested_by.user_id or "",
            "portfolio_id": self.command.portfolio_id,
            "command": self.command.model_dump_json(),
            "channel_id": self.channel_id or "",
            "approval_token": self.approval_token or "",
            "facts": self.facts,
            "state": self.state,
        }

    @classmethod
    def from_hash(cls, token: str, raw: dict[str, str]) -> Pending:
        return cls(
            token=token,
            command=QueuedCommand.model_validate_json(raw["command"]),
            channel_id=raw.get("channel_id") or None,
            approval_token=raw.get("approval_token") or None,
            facts=raw.get("facts", ""),
            state=raw.get("state", "pending"),
        )


async def save_pending(redis: aioredis.Redis, pending: Pending, ttl_s: int = PREVIEW_TTL_S) -> None:
    """Store a preview's confirmation; it expires by itself after ``ttl_s``."""
    key = keys.confirmation(pending.token)
    async with redis.pipeline(transaction=True) as pipe:
        mapping: Any = pending.fields()
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, ttl_s)
        await pipe.execute()


async def load_pending(redis: aioredis.Redis, token: str) -> Pending | None:
    raw = await redis.hgetall(keys.confirmation(token))
    return Pending.from_hash(token, text_map(raw)) if raw else None


@dataclass(frozen=True)
class ApprovalStart:
    """What the confirm step writes when the rule requires approval."""

    token: str
    fields: dict[str, str]
    expires_at_ms: int
    event: tuple[str, str, str]  # id, type, body
    audit: str


async def click(
    redis: aioredis.Redis,
    token: str,
    *,
    user_id: str,
    choice: str,
    audit: str,
    approval: ApprovalStart | None,
) -> tuple[str, str]:
    """Apply a Confirm/Cancel click; returns (outcome, state), see confirm_click.lua."""
    start = approval
    script_keys = [
        keys.confirmation(token),
        keys.AUDIT,
        keys.approval(start.token if start else "-"),
        keys.APPROVALS_DUE,
        keys.EVENTS,
    ]
    args: list[str | int] = [user_id, choice, audit, DECIDED_KEEP_S]
    if start is None:
        args += ["", "", 0, "", "", "", ""]
    else:
        args += [json.dumps(start.fields), start.token, start.expires_at_ms, *start.event]
        args.append(start.audit)
    outcome, state = (text(v) for v in await _CLICK(redis, script_keys, args))
    return outcome, state


@dataclass(frozen=True)
class Approval:
    """An approval request as stored."""

    token: str
    command: QueuedCommand
    state: str
    expires_at_ms: int
    facts: str
    channel_id: str | None
    message_ts: str | None
    decided_by: Requester | None

    @classmethod
    def from_hash(cls, token: str, raw: dict[str, str]) -> Approval:
        decided = raw.get("decided_by")
        return cls(
            token=token,
            command=QueuedCommand.model_validate_json(raw["command"]),
            state=raw.get("state", "pending"),
            expires_at_ms=int(raw.get("expires_at_ms", "0")),
            facts=raw.get("facts", ""),
            channel_id=raw.get("channel_id") or None,
            message_ts=raw.get("message_ts") or None,
            decided_by=Requester.model_validate_json(decided) if decided else None,
        )


def approval_fields(command: QueuedCommand, facts: str, expires_at_ms: int) -> dict[str, str]:
    return {
        "command": command.model_dump_json(),
        "state": "pending",
        "expires_at_ms": str(expires_at_ms),
        "facts": facts,
        "portfolio_id": command.portfolio_id,
    }


async def load_approval(redis: aioredis.Redis, token: str) -> Approval | None:
    raw = await redis.hgetall(keys.approval(token))
    return Approval.from_hash(token, text_map(raw)) if raw else None


async def note_message(redis: aioredis.Redis, token: str, channel_id: str, ts: str) -> None:
    """Where the request was posted, so that its decision updates it in place."""
    key = keys.approval(token)
    # Only on a request that still exists: a late note must not resurrect a forgotten one.
    if await redis.exists(key):
        await redis.hset(key, mapping={"channel_id": channel_id, "message_ts": ts})


@dataclass(frozen=True)
class Decision:
    """One decision's stored side effects, built by the caller (event and audit JSON)."""

    state: str  # approved | rejected | expired
    decider: Requester | None
    event: tuple[str, str, str]
    audit: str
    expiry_event: tuple[str, str]  # id, body: used instead when the deadline has passed
    expiry_audit: str


async def decide(
    redis: aioredis.Redis, token: str, decision: Decision, now_ms: int
) -> tuple[str, str, Requester | None]:
    """Apply a decision; returns (outcome, state, who decided), see approval_decide.lua."""
    script_keys = [
        keys.approval(token),
        keys.APPROVALS_DUE,
        keys.EVENTS,
        keys.AUDIT,
        keys.APPROVALS_TO_QUEUE,
    ]
    decider = decision.decider.model_dump_json() if decision.decider else ""
    args: list[str | int] = [
        token,
        decision.state,
        decider,
        decision.decider.user_id or "" if decision.decider else "",
        now_ms,
        APPROVAL_KEEP_S,
        *decision.event,
        decision.audit,
        *decision.expiry_event,
        decision.expiry_audit,
    ]
    raw = await _DECIDE(redis, script_keys, args)
    outcome, state, by = (text(v) for v in raw)
    return outcome, state, Requester.model_validate_json(by) if by else None


async def approval_queued(redis: aioredis.Redis, token: str) -> None:
    """The approved command's enqueue answered (whatever it said): nothing left to queue."""
    await redis.zrem(keys.APPROVALS_TO_QUEUE, token)


async def stranded_approvals(
    redis: aioredis.Redis, decided_before_ms: int, limit: int
) -> list[str]:
    """Tokens approved before ``decided_before_ms`` whose enqueue never answered."""
    found: list[Any] = await redis.zrangebyscore(
        keys.APPROVALS_TO_QUEUE, "-inf", decided_before_ms, start=0, num=limit
    )
    return [text(t) for t in found]


async def due_approvals(redis: aioredis.Redis, now_ms: int, limit: int = 100) -> list[str]:
    """Tokens of approval requests whose deadline has passed (oldest first)."""
    found: list[Any] = await redis.zrangebyscore(
        keys.APPROVALS_DUE, "-inf", now_ms, start=0, num=limit
    )
    return [text(t) for t in found]


async def pending_approvals(
    redis: aioredis.Redis, limit: int = 50, *, offset: int = 0
) -> list[Approval]:
    """Of the ``limit`` approval requests due soonest after the first ``offset``, those still
    awaiting a decision, soonest deadline first."""
    tokens: list[Any] = await redis.zrange(keys.APPROVALS_DUE, offset, offset + limit - 1)
    if not tokens:
        return []
    pipe = redis.pipeline(transaction=False)
    for token in tokens:
        pipe.hgetall(keys.approval(text(token)))
    raw: list[Any] = await pipe.execute()
    found = [
        Approval.from_hash(text(token), text_map(fields))
        for token, fields in zip(tokens, raw, strict=True)
        if fields
    ]
    return [approval for approval in found if approval.state == "pending"]
