"""Background work of the web process: kept until done, drained at shutdown."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.background import Background


async def test_drain_waits_for_running_work() -> None:
    """drain() lets a task that finishes within the grace complete."""
    background = Background()
    release = asyncio.Event()
    done: list[str] = []

    async def work() -> None:
        await release.wait()
        done.append("finished")

    background.spawn(work(), name="work")
    assert len(background) == 1
    drain = asyncio.ensure_future(background.drain(grace=5))
    release.set()
    await drain
    assert done == ["finished"]
    assert len(background) == 0


async def test_drain_cancels_what_outlives_the_grace() -> None:
    """A task still running after the grace is cancelled."""
    background = Background()
    task = background.spawn(asyncio.Event().wait(), name="stuck")  # type: ignore[arg-type]
    await background.drain(grace=0.01)
    assert task.cancelled()


async def test_failed_task_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A task that raises is logged with its name, not lost."""
    background = Background()

    async def boom() -> None:
        raise RuntimeError("kaput")

    caplog.set_level(logging.ERROR, logger="bot.background")
    task = background.spawn(boom(), name="late-reply")
    await asyncio.gather(task, return_exceptions=True)  # its done-callbacks run in order
    assert "background task late-reply failed" in caplog.text
    assert len(background) == 0
