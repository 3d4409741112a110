"""Coalescing concurrent calls: whatever is submitted while a call is in Redis goes out
together in the next, so a burst costs a round trip per batch, not per item."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Batches :meth:`submit` calls into ``write`` (one result per item, in order),
    with at most ``flushers`` calls of ``max_batch`` items in flight at once."""

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_batch: int,
        flushers: int = 1,
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._max_flushers = flushers
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flushers = 0

    async def submit(self, item: T) -> R:
        """``item``'s result, from whichever batch carried it."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flushers < self._max_flushers:
            self._flushers += 1
            asyncio.create_task(self._flush())  # noqa: RUF006 - it settles every future it takes
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: len(batch)]
                try:
                    results = await self._write([item for item, _ in batch])
                except Exception as exc:  # handed to every waiting caller
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._flushers -= 1
