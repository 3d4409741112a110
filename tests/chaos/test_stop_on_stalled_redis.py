"""SIGTERM while Redis does not answer (SIGSTOPped: a stalled failover, a network black
hole): the worker still exits 0 within the contract's 10 s, and loses nothing."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from relay.core.records import RequestState
from tests.chaos.checks import FAST_RECOVERY, queue, states
from tests.fixtures.chaos import (
    RelayProcesses,
    ServerFactory,
    SimStarter,
    arrival_times,
    full_env,
    portfolio_ids,
)
from tests.fixtures.slack import FakeSlack
from tests.fixtures.worker import eventually

pytestmark = pytest.mark.slow  # real processes; deselect with -m 'not slow'

PORTFOLIOS = 16  # the poller's concurrency: many polls in flight when Redis stops
STALLED_S = 2.0  # how long Redis has not answered when SIGTERM comes (a chaos schedule)
LATENCY_MS = 400  # each Glider answer: a poll asked for just before the stop answers after


async def test_sigterm_on_a_stalled_redis_still_exits_within_ten_seconds(
    redis_servers: ServerFactory,
    relay_procs: RelayProcesses,
    chaos_sim: SimStarter,
    fake_slack: FakeSlack,
) -> None:
    """Polls whose Glider answer came after Redis stopped are stuck writing it; the worker
    gives up handing them back (their leases run out by themselves) and exits in time.
    Once Redis answers again, another worker completes every rebalance."""
    server = await redis_servers()
    redis = server.client()
    flags = ("--op-duration", "8", "--cooldown", "0", "--latency-ms", str(LATENCY_MS))
    sim = await chaos_sim(PORTFOLIOS, *flags)
    relay_procs.env = full_env(server.url, sim, fake_slack, max_rps=200)
    worker = await relay_procs.worker("w1", *FAST_RECOVERY, ready=True)
    request_ids = [await queue(redis, pid) for pid in portfolio_ids(PORTFOLIOS)]

    async def all_polled() -> bool:
        found = await states(redis, request_ids)
        return all(state == RequestState.SUBMITTED.value for state in found.values())

    await eventually(all_polled, within=30, step=0.05)

    def polling_now() -> bool:
        """A poll just asked Glider: its answer (LATENCY_MS away) comes after the stop and
        its write then waits on Redis, in flight."""
        journal, times = sim.context.chaos.journal, arrival_times(sim)
        last = journal[-1] if journal else None
        fresh = bool(times) and time.monotonic() - times[-1] < LATENCY_MS / 4000
        return fresh and last is not None and last.method == "GET" and "/operations/" in last.path

    await eventually(polling_now, within=30, step=0.005)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)
    try:
        # Once Glider answered it, that poll waits on its write; the scenario: Redis has been
        # stalled for STALLED_S when the stop comes, so every loop is stuck on it too.
        stuck = sim.context.chaos.journal[-1]
        await eventually(lambda: stuck.status is not None, within=10, step=0.02)
        await asyncio.sleep(STALLED_S)
        assert await worker.terminate(within=10.5) == 0
    finally:
        server.proc.send_signal(signal.SIGCONT)
    assert not any("Traceback" in line.get("message", "") for line in worker.log_lines())

    replacement = await relay_procs.worker("w2", *FAST_RECOVERY, ready=True)

    async def all_completed() -> bool:
        found = await states(redis, request_ids)
        return all(state == RequestState.COMPLETED.value for state in found.values())

    await eventually(all_completed, within=60, step=0.2)
    assert await replacement.terminate() == 0
