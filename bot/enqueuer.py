"""Group commit for slash commands: concurrent enqueues share one Redis round trip.

The first command to arrive starts a flush on the next turn of the event loop;
the commands that arrived by then go together in one pipeline. Up to
``MAX_BATCHES_IN_FLIGHT`` batches are written at once; commands that arrive while
all are in flight wait and go together in the next one. A lone command is
therefore sent at once (no added latency) while a burst is written in a few
pipelines instead of one round trip each, which is what keeps the web process's
acks cheap under load. Each command's own Lua
call stays atomic, and its caller hears back only once Redis has answered.

Each caller waits at most ``budget`` seconds, and then learns which of two very
different things happened: its command was never sent (:class:`EnqueueNotSent`:
nothing was done), or it may have been (:class:`EnqueueOutcomeUnknown`: Redis
may still run it, see relay/store/abandon.py). A command counts as sent from the
moment its batch holds a connection and is about to write; a caller that gave
up before that moment is dropped from the batch, so it is never written.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from relay.core.commands import QueuedCommand
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


@dataclass(eq=False)
class _Waiter:
    command: QueuedCommand
    future: asyncio.Future[EnqueueResult]
    sent: bool = field(default=False)


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
        self._slots = asyncio.Semaphore(max_batches)
        self._waiting: list[_Waiter] = []
        self._flusher: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()

    async def enqueue(self, command: QueuedCommand) -> EnqueueResult:
        """Queue ``command`` within the budget.

        Raises :class:`EnqueueNotSent` (it was never written), :class:`EnqueueOutcomeUnknown`
        (it may have been), or Redis's own reply error for its script (``OutOfMemoryError``:
        the script did not run).
        """
        waiter = _Waiter(command, asyncio.get_running_loop().create_future())
        self._waiting.append(waiter)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="enqueue-flush")
        try:
            async with asyncio.timeout(self._budget):
                return await waiter.future
        except TimeoutError:
            # The timeout cancelled the future, so a batch not yet writing skips it for good.
            if waiter.sent:
                raise EnqueueOutcomeUnknown("Redis did not answer within the budget") from None
            raise EnqueueNotSent("no connection to Redis within the budget") from None

    async def _flush(self) -> None:
        try:
            while self._waiting:
                await self._slots.acquire()
                batch, self._waiting = self._waiting, []
                task = asyncio.create_task(self._send_in_slot(batch), name="enqueue-batch")
                self._batches.add(task)
                task.add_done_callback(self._batches.discard)
        finally:
            self._flusher = None

    async def _send_in_slot(self, batch: list[_Waiter]) -> None:
        try:
            await self._send(batch)
        finally:
            self._slots.release()

    def _take(self, batch: list[_Waiter]) -> list[QueuedCommand]:
        """The commands whose callers still wait, marked sent: called right before the write."""
        live = [waiter for waiter in batch if not waiter.future.done()]
        for waiter in live:
            waiter.sent = True
        return [waiter.command for waiter in live]

    async def _send(self, batch: list[_Waiter]) -> None:
        results: list[EnqueueResult | RedisError]
        try:
            # Bounded like its callers: past the budget nobody waits for the answer, and the
            # client's own resends only delay the next batch (relay/store/abandon.py settles them).
            async with asyncio.timeout(self._budget):
                results = await enqueue_when_connected(self._redis, lambda: self._take(batch))
        except asyncio.CancelledError:
            for waiter in batch:
                waiter.future.cancel()
            raise
        except Exception as exc:  # every caller hears it (a bug as it is)
            self._fail(batch, exc)
            return
        live = [waiter for waiter in batch if waiter.sent]
        for waiter, result in zip(live, results, strict=True):
            if waiter.future.done():
                continue
            if isinstance(result, EnqueueResult):
                waiter.future.set_result(result)
            else:
                waiter.future.set_exception(result)

    @staticmethod
    def _fail(batch: list[_Waiter], exc: Exception) -> None:
        """Every caller still waiting hears whether its command may have been written."""
        for waiter in batch:
            if waiter.future.done():
                continue
            if not isinstance(exc, RedisError | TimeoutError):
                waiter.future.set_exception(exc)  # a bug: as it is
            elif waiter.sent:
                waiter.future.set_exception(EnqueueOutcomeUnknown(f"no answer: {exc!r}"))
            else:
                waiter.future.set_exception(EnqueueNotSent(f"not sent: {exc!r}"))
