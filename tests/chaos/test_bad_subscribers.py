"""Subscribers that hang, reset connections or answer 500 do not slow a healthy one."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from relay.webhooks.policy import FAILING_RATE
from relay.webhooks.schedule import DEFAULT_DELAYS_S
from tests.chaos.checks import FAST_RECOVERY, subscribe
from tests.chaos.sink import WebhookSink
from tests.fixtures.chaos import ROOT, RelayProcesses, ServerFactory, base_env
from tests.fixtures.dispatch import event, publish
from tests.fixtures.worker import eventually

pytestmark = pytest.mark.slow  # real processes; deselect with -m 'not slow'

RATE = 50  # events per second, evenly paced
EVENTS = 1000  # per run, so p99 is the 10th slowest of 1,000
SIMULATED_HOUR_S = 20.0  # the retry schedule runs this many times faster than real time
DELAYS = ",".join(f"{d * SIMULATED_HOUR_S / 3600:g}" for d in DEFAULT_DELAYS_S)
BAD = ("hang", "reset", "error")


@pytest.fixture
async def bad_subscribers() -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """The misbehaving subscribers' process and its base URL; stopped after the test."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "tests.chaos.bad_subscribers"),
        cwd=ROOT,
        env=base_env(),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
    port = int(line.decode().split()[1])
    yield f"http://127.0.0.1:{port}", proc
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


async def run_healthy(redis: aioredis.Redis, sink: WebhookSink) -> list[float]:
    """Publish EVENTS at RATE; each one's event-to-delivery latency at the healthy subscriber."""

    def distinct() -> int:
        return len({hit.webhook_id for hit in sink.hits["/healthy"]})

    before = distinct()
    request_ids = set()
    for _ in range(EVENTS):
        item = event()
        request_ids.add(item.data.requestId)
        await publish(redis, item)
        await asyncio.sleep(1 / RATE)  # the pace of the event source, not a wait for a result

    await eventually(lambda: distinct() >= before + EVENTS, within=60, step=0.1)
    first: dict[str, float] = {}
    for hit in sink.hits["/healthy"]:
        request_id = hit.event[0]
        if request_id in request_ids and request_id not in first:
            first[request_id] = hit.latency_s
    return list(first.values())


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98]


async def test_failing_subscribers_never_hold_up_or_cost_a_healthy_one(
    redis_servers: ServerFactory,
    relay_procs: RelayProcesses,
    webhook_sink: WebhookSink,
    bad_subscribers: tuple[str, asyncio.subprocess.Process],
) -> None:
    """Three bad subscribers (hang, reset, 500) beside a healthy one, their retries running
    an hour of the schedule every 20 s: the healthy subscriber still gets every event, once
    per webhook-id, on the first attempt, while the bad ones keep being tried at their
    paced share of the sender.

    The latency cost is measured, not asserted (these machines are shared and noisy):
    ``bench/isolation.py`` prints the healthy p99 with and without the bad subscribers and
    their ratio; this test prints the same two figures for the record.
    """
    server = await redis_servers()
    redis = server.client()
    bad_url, bad_proc = bad_subscribers
    relay_procs.env = {
        "REDIS_URL": server.url,
        "GLIDER_API_KEY": "gldr_sk_unused_by_the_dispatcher",
        "RELAY_ALLOW_PRIVATE_URLS": "true",
    }
    await subscribe(redis, webhook_sink.url("healthy"))
    worker = await relay_procs.worker(
        "d1", "--only", "dispatcher", *FAST_RECOVERY, "--webhook-delays-s", DELAYS, ready=True
    )
    baseline = await run_healthy(redis, webhook_sink)
    for path in BAD:
        await subscribe(redis, f"{bad_url}/{path}")
    with_bad = await run_healthy(redis, webhook_sink)

    assert worker.running
    assert await worker.terminate() == 0
    bad_proc.terminate()
    assert bad_proc.stdout is not None
    line = await asyncio.wait_for(bad_proc.stdout.readline(), timeout=10)
    seen = json.loads(line.decode())
    assert len(baseline) == len(with_bad) == EVENTS
    # Each of the 2,000 events reached the healthy subscriber under its own webhook-id.
    assert len({hit.webhook_id for hit in webhook_sink.hits["/healthy"]}) == 2 * EVENTS
    assert seen["/hang"] >= 10  # its whole concurrency cap, held for the 10 s timeout
    # The failing subscribers kept being tried all along, but paced to their share of the
    # sender (relay.webhooks.policy.AttemptBudget): what is left stays queued, never lost.
    assert seen["/reset"] >= 4 * FAILING_RATE
    assert seen["/error"] >= 4 * FAILING_RATE
    print(f"healthy p99 {p99(baseline):.3f} s alone, {p99(with_bad):.3f} s beside bad ones")
