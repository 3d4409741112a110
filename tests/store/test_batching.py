"""The one batching primitive: concurrent submits share a write, callers who gave up are dropped."""

from __future__ import annotations

import asyncio

import pytest

from relay.store.batching import Coalescer, GaveUp, Take


async def test_a_burst_shares_one_write_and_results_keep_order() -> None:
    """Items submitted together go out in one write; each caller gets its own result."""
    writes: list[list[int]] = []

    async def write(items: list[int]) -> list[int]:
        writes.append(items)
        return [item * 10 for item in items]

    batches: Coalescer[int, int] = Coalescer(write)
    results = await asyncio.gather(*(batches.submit(i) for i in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert writes == [[0, 1, 2, 3, 4]]


async def test_items_arriving_during_a_write_go_together_in_the_next() -> None:
    """With one flusher, what arrives while a write is in flight waits and goes in one batch."""
    writes: list[list[int]] = []
    writing, gate = asyncio.Event(), asyncio.Event()

    async def write(items: list[int]) -> list[int]:
        writes.append(items)
        writing.set()
        await gate.wait()
        return items

    batches: Coalescer[int, int] = Coalescer(write, max_batch=10)
    first = asyncio.ensure_future(batches.submit(0))
    await writing.wait()
    later = [asyncio.ensure_future(batches.submit(i)) for i in (1, 2, 3)]
    gate.set()
    assert await asyncio.gather(first, *later) == [0, 1, 2, 3]
    assert writes == [[0], [1, 2, 3]]


async def test_a_failed_write_reaches_every_caller_of_its_batch() -> None:
    """The write's error is raised to each caller, mapped by whether its item was taken."""

    async def write(take: Take[int]) -> list[int]:
        take()
        raise ConnectionError("down")

    def failure(exc: Exception, taken: bool) -> BaseException:
        return RuntimeError(f"taken={taken}: {exc}")

    batches: Coalescer[int, int] = Coalescer.taking_late(write, failure=failure)
    outcomes = await asyncio.gather(batches.submit(1), batches.submit(2), return_exceptions=True)
    assert [str(o) for o in outcomes] == ["taken=True: down"] * 2


async def test_a_caller_that_gave_up_before_the_take_is_never_written() -> None:
    """Late taking: a caller whose budget ran out before ``take()`` is left out, and told so."""
    connected = asyncio.Event()
    written: list[list[str]] = []

    async def write(take: Take[str]) -> list[str]:
        await connected.wait()
        items = take()
        written.append(items)
        return items

    batches: Coalescer[str, str] = Coalescer.taking_late(write)
    with pytest.raises(GaveUp) as gave_up:
        await batches.submit("never", budget=0.05)
    assert gave_up.value.taken is False
    connected.set()
    assert await batches.submit("last") == "last"
    assert written == [[], ["last"]]


async def test_a_caller_that_gave_up_after_the_take_may_have_been_written() -> None:
    """Past ``take()`` the item may be sent, so giving up says it was taken."""
    answered = asyncio.Event()

    async def write(take: Take[str]) -> list[str]:
        items = take()
        await answered.wait()
        return items

    batches: Coalescer[str, str] = Coalescer.taking_late(write)
    with pytest.raises(GaveUp) as gave_up:
        await batches.submit("stalled", budget=0.05)
    assert gave_up.value.taken is True
    answered.set()
    assert await batches.submit("next") == "next"  # the stalled write ended; the next goes out
