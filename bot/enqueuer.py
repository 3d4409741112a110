"""Group commit for slash commands: concurrent enqueues share one Redis round trip.

The first command to arrive starts a flush on the next turn of the event loop;
commands that arrive while a flush is in flight wait and go together in the
next one. A lone command is therefore sent at once (no added latency) while a
burst is written in a few pipelines instead of one round trip each, which is
what keeps the web process's acks cheap under load. Each command's own Lua
call stays atomic, and its caller hears back only once Redis has answered.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from relay.commands import QueuedCommand
from relay.queue import EnqueueResult, enqueue_many

_Waiter = tuple[QueuedCommand, "asyncio.Future[EnqueueResult]"]


class GroupEnqueuer:
    """``await enqueue(command)``: like :func:`relay.queue.enqueue`, batched with its peers."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._waiting: list[_Waiter] = []
        self._flusher: asyncio.Task[None] | None = None

    async def enqueue(self, command: QueuedCommand) -> EnqueueResult:
        """Queue ``command``; raises the ``RedisError`` of its batch when Redis failed."""
        future: asyncio.Future[EnqueueResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((command, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="enqueue-flush")
        return await future

    async def _flush(self) -> None:
        try:
            while self._waiting:
                # A caller that gave up (its ack already said "nothing was done") is dropped.
                batch = [(c, f) for c, f in self._waiting if not f.done()]
                self._waiting = []
                if batch:
                    await self._send(batch)
        finally:
            self._flusher = None

    async def _send(self, batch: list[_Waiter]) -> None:
        results: list[EnqueueResult | Exception]
        try:
            results = [*await enqueue_many(self._redis, [command for command, _ in batch])]
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # Redis unreachable (or a bug): every caller hears it
            results = [exc] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, EnqueueResult):
                future.set_result(result)
            else:
                future.set_exception(result)
