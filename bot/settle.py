"""After an "outcome unknown" ack: find out for certain, then tell the requester.

One background loop per web process holds the commands whose enqueue got no
answer. Each is settled by :func:`relay.store.abandon.settle_many` (one atomic step:
queued after all, or abandoned with a tombstone so that a late copy of the
write does nothing), retried with capped backoff until Redis answers or the
command's deadline passes. The answer goes to the command's ``response_url``.
Bounded: at most ``max_pending`` commands wait; each is tried until its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot import messages
from bot.background import Background
from bot.messages import Reply
from relay.core.backoff import backoff_delay
from relay.core.commands import QueuedCommand
from relay.metrics import UNKNOWN_ACKS
from relay.store.abandon import Settled, Settlement, settle_many

log = logging.getLogger(__name__)

Tell = Callable[[str | None, Reply], Coroutine[Any, Any, None]]

# A write still in a socket buffer or a slow proxy usually lands within a second; waiting
# that long before the first settle turns more "unknown"s into "queued after all".
FIRST_CHECK_S = 1.0
# Well inside the 30 minutes a response_url stays valid, and long enough for a Redis
# failover or restart.
DEADLINE_S = 300.0
ATTEMPT_S = 3.0  # one settle round trip, the client's own reconnects included
MAX_PENDING = 10_000
_ROUND = 200  # commands settled per round trip


@dataclass
class _Pending:
    command: QueuedCommand
    deadline: float
    due: float
    attempts: int = 0


def settled_reply(command: QueuedCommand, settled: Settled) -> Reply:
    """What the requester is told once the outcome is known."""
    if settled.status is Settlement.QUEUED:
        return messages.queued_after_all(command.action, command.portfolio_id, settled.request_id)
    if settled.status is Settlement.DUPLICATE:
        return messages.already_queued(command.portfolio_id, settled.request_id)
    return messages.settled_not_queued(command.action, command.portfolio_id)


class OutcomeChecker:
    """``check(command)``: settle an unknown enqueue in the background and tell its requester."""

    def __init__(
        self,
        redis: aioredis.Redis,
        tell: Tell,
        background: Background,
        *,
        first_check_s: float = FIRST_CHECK_S,
        deadline_s: float = DEADLINE_S,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._redis = redis
        self._tell = tell
        self._background = background
        self._first_check_s = first_check_s
        self._deadline_s = deadline_s
        self._max_pending = max_pending
        self._pending: dict[str, _Pending] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def check(self, command: QueuedCommand) -> bool:
        """Start settling ``command``; False when too many wait already (nobody will check)."""
        if len(self._pending) >= self._max_pending:
            return False
        now = time.monotonic()
        self._pending[command.request_id] = _Pending(
            command, deadline=now + self._deadline_s, due=now + self._first_check_s
        )
        self._wake.set()
        if self._task is None:
            self._task = self._background.spawn(self._run(), name="settle-unknown-enqueues")
        return True

    async def _run(self) -> None:
        try:
            while self._pending:
                wait = min(p.due for p in self._pending.values()) - time.monotonic()
                if wait > 0:
                    self._wake.clear()
                    # A schedule, cut short when a new command arrives (it may be due sooner).
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=wait)
                    continue
                await self._round()
        finally:
            self._task = None

    async def _round(self) -> None:
        now = time.monotonic()
        due = [p for p in self._pending.values() if p.due <= now][:_ROUND]
        results: list[Settled | RedisError]
        try:
            async with asyncio.timeout(ATTEMPT_S):
                results = await settle_many(self._redis, [p.command for p in due])
        except (RedisError, TimeoutError, OSError) as exc:
            log.warning("could not settle unknown enqueues yet", extra={"error": repr(exc)})
            results = [RedisError(repr(exc))] * len(due)
        now = time.monotonic()
        for pending, result in zip(due, results, strict=True):
            if isinstance(result, Settled):
                self._finish(pending, result.status.value, settled_reply(pending.command, result))
            elif now >= pending.deadline:
                reply = messages.still_unknown(pending.command.action, pending.command.portfolio_id)
                self._finish(pending, "still_unknown", reply)
            else:
                pending.attempts += 1
                pending.due = now + backoff_delay(pending.attempts, base=0.5, cap=5.0)

    def _finish(self, pending: _Pending, result: str, reply: Reply) -> None:
        command = pending.command
        del self._pending[command.request_id]
        UNKNOWN_ACKS.labels(result=result).inc()
        log.info(
            "unknown enqueue settled: %s",
            result,
            extra={"request_id": command.request_id, "portfolio_id": command.portfolio_id},
        )
        self._background.spawn(
            self._tell(command.response_url, reply), name=f"settled:{command.request_id}"
        )
