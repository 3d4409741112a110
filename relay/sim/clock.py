"""A fake clock for the simulator and the tests, moved by hand (the real one is
:func:`relay.core.clock.utc_now`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

FAKE_EPOCH = datetime(2026, 4, 17, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when told to, so tests never sleep.

    ``sleep`` is a drop-in for ``asyncio.sleep``: it records the wait, moves the
    clock by it and returns at once; hand it to code that would otherwise sleep.
    """

    def __init__(self, start: datetime = FAKE_EPOCH) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        """Move time forward by ``seconds`` and return the new now."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += timedelta(seconds=seconds)
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Record ``seconds``, advance by it, and yield to the loop once."""
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)
