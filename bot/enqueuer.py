"""Group commit for slash commands: concurrent enqueues share one Redis round trip.

The first command to arrive starts a flush on the next turn of the event loop;
the commands that arrived by then go together in one pipeline. Up to
``MAX_BATCHES_IN_FLIGHT`` batches are written at once; commands that arrive while
all are in flight wait and go together in the next one. A lone command is
therefore sent at once (no added latency) while a burst is written in a few
pipelines instead of one round trip each, which is what keeps the web process's
acks cheap under load. Each command's own Lua
call stays atomic, and its caller hears back only once Redis has answered. The
batching itself is :class:`relay.store.batching.Coalescer`, as for the webhook steps.

Each caller waits at most ``budget`` seconds, and then learns which of two very
different things happened: its command was never sent (:class:`EnqueueNotSent`:
nothing was done), or it may have been (:class:`EnqueueOutcomeUnknown`: Redis
may still run it, see relay/store/abandon.py). A command counts as sent from the
moment its batch holds a connection and is about to write; a caller that gave
up before that moment is dropped from the batch, so it is never written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from relay.core.commands import QueuedCommand
from relay.store.batching import Coalescer, GaveUp, Take
from relay.store.queue import (
    EnqueueNotSent,
    EnqueueOutcomeUnknown,
    EnqueueResult,
    enqueue_when_connected,
)

# Slack waits 3 s for the ack; a store that has not answered by then never will in time.
ENQUEUE_BUDGET_S = 2.0
# Batches written at once, each on its own connection: one stalled connection (a slow or
# reset Redis link) must not hold back every command behind it until its budget is gone.
MAX_BATCHES_IN_FLIGHT = 8


def _failure(exc: Exception, sent: bool) -> BaseException:
    """What a caller hears when its batch failed: whether its command may have been written."""
    if not isinstance(exc, RedisError | TimeoutError):
        return exc  # a bug: as it is
    if sent:
        return EnqueueOutcomeUnknown(f"no answer: {exc!r}")
    return EnqueueNotSent(f"not sent: {exc!r}")


class GroupEnqueuer:
    """``await enqueue(command)``: like :func:`relay.store.queue.enqueue`, batched with peers."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        budget: float = ENQUEUE_BUDGET_S,
        max_batches: int = MAX_BATCHES_IN_FLIGHT,
    ) -> None:
        self._redis = redis
        self._budget = budget
        self._batches: Coalescer[QueuedCommand, EnqueueResult] = Coalescer.taking_late(
            self._write, flushers=max_batches, failure=_failure
        )

    async def enqueue(
        self, command: QueuedCommand, *, within: float | None = None
    ) -> EnqueueResult:
        """Queue ``command`` within the budget, or within ``within`` s when that is less
        (what is left of the ack's deadline).

        Raises :class:`EnqueueNotSent` (it was never written), :class:`EnqueueOutcomeUnknown`
        (it may have been), or Redis's own reply error for its script (``OutOfMemoryError``:
        the script did not run).
        """
        try:
            budget = self._budget if within is None else min(self._budget, within)
            return await self._batches.submit(command, budget=budget)
        except GaveUp as exc:
            if exc.taken:
                raise EnqueueOutcomeUnknown("Redis did not answer within the budget") from None
            raise EnqueueNotSent("no connection to Redis within the budget") from None

    async def _write(self, take: Take[QueuedCommand]) -> Sequence[EnqueueResult | RedisError]:
        # Bounded like its callers: past the budget nobody waits for the answer, and the
        # client's own resends only delay the next batch (relay/store/abandon.py settles them).
        # ``take`` runs once a connection is held: the callers still waiting, right before
        # the write.
        async with asyncio.timeout(self._budget):
            return await enqueue_when_connected(self._redis, take)
