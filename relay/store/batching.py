"""Coalescing concurrent calls: whatever is submitted while a batch is in Redis goes out
together in the next, so a burst costs a round trip per batch, not per item.

The one batching primitive of the relay: the web's enqueues (``bot/enqueuer.py``), the
webhook fan-out and the per-subscription queue steps all use it. A lone item is sent on
the next turn of the event loop (no added latency); up to ``flushers`` batches are in
Redis at once, each on its own call, so one stalled call holds back only its own batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Take = Callable[[], list[T]]
"""Called by a write right before it sends: the items to send (their callers marked taken)."""
Failure = Callable[[Exception, bool], BaseException]
"""What a caller hears when its batch's write raised: ``(error, taken) -> exception``."""


class GaveUp(TimeoutError):
    """A caller's own ``budget`` ran out; ``taken`` tells whether its item may have been sent."""

    def __init__(self, *, taken: bool) -> None:
        super().__init__("taken by a write" if taken else "never taken by a write")
        self.taken = taken


def _as_is(exc: Exception, taken: bool) -> BaseException:
    return exc


def _expire(future: asyncio.Future[Any], expired: list[bool]) -> None:
    if not future.done():
        expired.append(True)
        future.cancel()


@dataclass(eq=False)
class _Waiter(Generic[T, R]):
    item: T
    future: asyncio.Future[R]
    taken: bool = field(default=False)


class Coalescer(Generic[T, R]):
    """Batches :meth:`submit` calls into ``write`` (one result per item, in order),
    with at most ``flushers`` calls of ``max_batch`` items (None: all waiting) in flight."""

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int | None = None,
        flushers: int = 1,
    ) -> None:
        async def write_all(take: Take[T]) -> Sequence[R | BaseException]:
            return await write(take())

        self._setup(write_all, max_batch, flushers, drop_abandoned=False, failure=_as_is)

    @classmethod
    def taking_late(
        cls,
        write: Callable[[Take[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        flushers: int = 1,
        failure: Failure = _as_is,
    ) -> Coalescer[T, R]:
        """A coalescer whose ``write`` calls ``take()`` itself, right before it sends.

        ``take`` leaves out the items whose callers already gave up, so an item whose
        caller stopped waiting before that moment is never sent. ``write`` returns one
        result per item taken, in order; an exception in a slot is raised to its caller.
        When ``write`` raises, each caller hears ``failure(error, taken)``.
        """
        coalescer = cls.__new__(cls)
        coalescer._setup(write, None, flushers, drop_abandoned=True, failure=failure)
        return coalescer

    def _setup(
        self,
        write: Callable[[Take[T]], Awaitable[Sequence[R | BaseException]]],
        max_batch: int | None,
        flushers: int,
        *,
        drop_abandoned: bool,
        failure: Failure,
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._max_flushers = flushers
        self._drop_abandoned = drop_abandoned
        self._failure = failure
        self._pending: list[_Waiter[T, R]] = []
        self._flushing = 0  # counted in the flush itself: a done callback would come late
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T, *, budget: float | None = None) -> R:
        """``item``'s result, from whichever batch carried it.

        With ``budget``, raises :class:`GaveUp` once that many seconds have passed.
        """
        loop = asyncio.get_running_loop()
        waiter: _Waiter[T, R] = _Waiter(item, loop.create_future())
        self._pending.append(waiter)
        if self._flushing < self._max_flushers:
            self._flushing += 1
            task = asyncio.create_task(self._flush(), name="coalesce-flush")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if budget is None:
            return await waiter.future
        # A timer that cancels the future, rather than asyncio.timeout(), which cancels the
        # task and builds a scope per call (this runs once per Slack ack). A cancelled
        # future is skipped for good by a batch not yet taking it.
        expired: list[bool] = []
        timer = loop.call_later(budget, _expire, waiter.future, expired)
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if not expired:
                raise  # the caller itself was cancelled
            raise GaveUp(taken=waiter.taken) from None
        finally:
            timer.cancel()

    async def _flush(self) -> None:
        try:
            while self._pending:
                size = len(self._pending) if self._max_batch is None else self._max_batch
                batch = self._pending[:size]
                del self._pending[: len(batch)]
                await self._send(batch)
        finally:
            self._flushing -= 1

    def _take(self, batch: list[_Waiter[T, R]], taken: list[_Waiter[T, R]]) -> list[T]:
        live = [w for w in batch if not (self._drop_abandoned and w.future.done())]
        for waiter in live:
            waiter.taken = True
        taken[:] = live
        return [waiter.item for waiter in live]

    async def _send(self, batch: list[_Waiter[T, R]]) -> None:
        taken: list[_Waiter[T, R]] = []
        try:
            results = await self._write(lambda: self._take(batch, taken))
        except asyncio.CancelledError:
            for waiter in batch:
                waiter.future.cancel()
            raise
        except Exception as exc:  # every caller still waiting hears it
            for waiter in batch:
                if not waiter.future.done():
                    waiter.future.set_exception(self._failure(exc, waiter.taken))
            return
        for waiter, result in zip(taken, results, strict=True):
            if waiter.future.done():
                continue
            if isinstance(result, BaseException):
                waiter.future.set_exception(result)
            else:
                waiter.future.set_result(result)
