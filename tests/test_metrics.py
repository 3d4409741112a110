"""``/metrics``: Prometheus text with command outcomes and depths read from Redis."""

from __future__ import annotations

import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from relay.store import keys
from relay.store.queue import ensure_group
from tests.fixtures.web import WebFactory, WebHarness


async def _scrape(web: WebHarness) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await web.client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _commands(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], outcome: str) -> float:
    key = ("glider_relay_commands_total", (("command", "/rebalance"), ("outcome", outcome)))
    return samples.get(key, 0.0)


async def test_metrics_count_commands_and_read_depths(
    any_redis: aioredis.Redis, web_factory: WebFactory
) -> None:
    """Accepted and refused commands are counted by outcome; stream depth comes from Redis."""
    web = await web_factory(any_redis)
    await ensure_group(any_redis, keys.COMMAND_STREAM, keys.COMMANDS_GROUP)
    before = await _scrape(web)
    await web.command("/rebalance", "pf_metrics_1")
    await web.command("/rebalance", "not a valid id!")
    await web.command("/rebalance", "pf_metrics_2", user_id="U_NOT_ALLOWED")
    after = await _scrape(web)
    for outcome in ("queued", "usage", "unauthorized"):
        assert _commands(after, outcome) == _commands(before, outcome) + 1, outcome
    depth = after[("glider_relay_queue_depth", (("queue", "commands_undelivered"),))]
    assert depth == 1
    assert ("glider_relay_operations_tracked", ()) in after


async def test_metrics_need_no_token(any_redis: aioredis.Redis, web_factory: WebFactory) -> None:
    """/metrics is open (Prometheus scrapes it) while the admin API needs a bearer token."""
    web = await web_factory(any_redis)
    assert (await web.client.get("/metrics")).status == 200
    assert (await web.client.get("/v1/operations")).status in (401, 503)
