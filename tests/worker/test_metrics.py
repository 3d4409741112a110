"""A worker's own metrics port (WORKER_METRICS_PORT) serves Prometheus text."""

from __future__ import annotations

import asyncio

import aiohttp
import redis.asyncio as aioredis
from pydantic import SecretStr

from relay.metrics import metrics_server
from relay.settings import load_settings
from relay.store import keys
from relay.worker import process as worker
from relay.worker.registry import Tuning
from tests.fixtures.glider import free_port


async def test_metrics_port_leaves_the_shared_gauges_to_web(any_redis: aioredis.Redis) -> None:
    """A worker's port serves its own counters but not the Redis-derived gauges, which the web
    process alone exports (so sum() over every target is not multiplied by the workers)."""
    await any_redis.zadd(keys.POLL_DUE, {"req_a": 1, "req_b": 2})
    async with (
        metrics_server(0, host="127.0.0.1") as address,
        aiohttp.ClientSession() as http,
        http.get(f"http://{address}/metrics") as response,
    ):
        assert response.status == 200
        body = await response.text()
    assert "# TYPE glider_relay_deliveries_total counter" in body
    for shared in ("operations_tracked", "poll_lag_seconds", "queue_depth"):
        assert f"glider_relay_{shared}" not in body


async def test_worker_serves_metrics_while_running(any_redis: aioredis.Redis) -> None:
    """glider-relay worker with WORKER_METRICS_PORT answers /metrics until it stops."""
    port = free_port()
    settings = load_settings(
        redis_url="redis://127.0.0.1:6379/0",  # unused: the worker gets ``any_redis``
        glider_api_key=SecretStr("gldr_sk_unused"),
        worker_metrics_port=port,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(
        worker.serve(settings, stop, only=["poller"], tuning=Tuning(grace_s=0.5), redis=any_redis)
    )
    async with aiohttp.ClientSession() as http:
        body = ""
        for _ in range(200):  # bounded: the port opens as the worker starts
            try:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                    body = await response.text()
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert "# TYPE glider_relay_glider_requests_total counter" in body
    assert "glider_relay_queue_depth" not in body
