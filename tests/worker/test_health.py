"""health: a reader's progress, and the worker's /healthz and /readyz."""

from __future__ import annotations

import aiohttp
import redis.asyncio as aioredis

from relay.metrics import metrics_server
from relay.store.health import StoreMonitor
from relay.worker.health import FAILING_AFTER, STALE_AFTER_S, ReadProgress, WorkerHealth


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_reader_is_fine_while_it_reads() -> None:
    """Reads succeeding, or failing fewer than FAILING_AFTER times in a row, are no problem."""
    progress = ReadProgress("r")
    for _ in range(FAILING_AFTER - 1):
        progress.failed(ConnectionError("reset"))
    assert progress.problem() is None
    progress.ok()
    assert progress.failures == 0


def test_failing_reads_are_a_problem() -> None:
    """FAILING_AFTER failures in a row: the problem names the count and the last error."""
    progress = ReadProgress("r")
    for _ in range(FAILING_AFTER):
        progress.failed(ConnectionError("reset"))
    assert progress.problem() == f"{FAILING_AFTER} reads failed in a row (ConnectionError: reset)"


def test_a_stale_reader_is_a_problem() -> None:
    """No successful read for longer than STALE_AFTER_S (a hung read) is a problem too."""
    clock = Clock()
    progress = ReadProgress("r", clock=clock)
    clock.now += STALE_AFTER_S + 1
    assert progress.problem() == f"no successful read for {STALE_AFTER_S + 1:.0f} s"
    progress.ok()
    assert progress.problem() is None


async def test_worker_readyz_names_the_reader_that_cannot_read(
    any_redis: aioredis.Redis,
) -> None:
    """/healthz is 200 always; /readyz is 503 before start and while a reader fails, else 200."""
    health = WorkerHealth(StoreMonitor(any_redis))
    reader = ReadProgress("{gr}:commands (executors)")
    health.readers = [reader]
    async with (
        metrics_server(0, host="127.0.0.1", routes=health.add_routes) as address,
        aiohttp.ClientSession(f"http://{address}") as http,
    ):
        assert (await http.get("/healthz")).status == 200
        assert (await http.get("/readyz")).status == 503  # not started yet
        health.started = True
        ready = await http.get("/readyz")
        assert (ready.status, (await ready.json())["redis"]) == (200, "ok")
        for _ in range(FAILING_AFTER):
            reader.failed(ConnectionError("reset"))
        unready = await http.get("/readyz")
        body = await unready.json()
        assert unready.status == 503
        assert "reads failed in a row" in body["readers"]["{gr}:commands (executors)"]
