"""Console lists stay bounded with 100,000 deliveries: a page costs the same Redis work
whatever the index holds (cursor paging by lexical range, never a scan or a count)."""

from __future__ import annotations

import re

import redis.asyncio as aioredis

from relay.core.ids import ulid
from relay.store import keys
from relay.webhooks.models import DeliveryStatus
from tests.console.support import TOKEN, Client, sign_in
from tests.fixtures.web import WebFactory

TOTAL = 100_000
CHUNK = 5_000
PAGE = 25  # relay/console/pages.py PAGE
SCALE_SID = "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV"
# A page: the session read and refresh, one ranged read, one HGETALL per row; never per
# delivery held. Generous for the session's own commands, far below anything that walks.
BOUND = PAGE + 20
NEXT = re.compile(r'href="\?[^"]*cursor=(dlv_[0-9A-Z]+)">Next page')


async def _seed(redis: aioredis.Redis, sid: str) -> list[str]:
    """``TOTAL`` deliveries of ``sid`` (every other one skipped), written by pipeline."""
    base, ids = 1_790_000_000_000, []
    for start in range(0, TOTAL, CHUNK):
        pipe = redis.pipeline(transaction=False)
        for i in range(start, start + CHUNK):
            did = "dlv_" + ulid(base + i, i.to_bytes(10, "big"))
            status = DeliveryStatus.SKIPPED if i % 2 else DeliveryStatus.SUCCEEDED
            pipe.hset(
                keys.delivery(did),
                mapping={
                    "id": did,
                    "subscriptionId": sid,
                    "eventId": f"evt_{i}",
                    "eventType": "rebalance.completed",
                    "webhookId": "msg_" + did[4:],
                    "status": status.value,
                    "createdAt": base + i,
                    "n": 0,
                },
            )
            pipe.zadd(keys.DELIVERIES, {did: 0})
            pipe.zadd(keys.deliveries_by_status(status), {did: 0})
            pipe.zadd(keys.subscription_deliveries(sid), {did: 0})
            ids.append(did)
        await pipe.execute()
    return ids


async def _commands(redis: aioredis.Redis) -> int:
    info = await redis.info("stats")
    return int(info["total_commands_processed"])


async def _page(client: Client, redis: aioredis.Redis, path: str) -> tuple[str, int]:
    """The page's HTML and how many Redis commands serving it took (the two INFO calls
    around it are taken off)."""
    before = await _commands(redis)
    answer = await client.get(path)
    assert answer.status == 200, path
    html = await answer.text()
    cost = await _commands(redis) - before - 1
    return html, cost


async def test_pages_of_100k_deliveries_cost_bounded_redis_work(
    web_factory: WebFactory, real_redis: aioredis.Redis
) -> None:
    """First page, a deep page by cursor, and filtered pages each take at most ``BOUND``
    commands and show exactly the next ``PAGE`` deliveries, newest first."""
    ids = await _seed(real_redis, SCALE_SID)
    newest = sorted(ids, reverse=True)
    assert await real_redis.zcard(keys.DELIVERIES) == TOTAL
    harness = await web_factory(real_redis, relay_admin_token=TOKEN)
    await sign_in(harness.client)
    html, cost = await _page(harness.client, real_redis, "/console/deliveries")
    assert PAGE <= cost <= BOUND, cost  # one HGETALL per row at least: it is measured
    assert all(did in html for did in newest[:PAGE])
    assert newest[PAGE] not in html
    cursor = NEXT.search(html)
    assert cursor is not None
    assert cursor.group(1) == newest[PAGE - 1]
    deep = newest[60_000]
    html, cost = await _page(harness.client, real_redis, f"/console/deliveries?cursor={deep}")
    assert PAGE <= cost <= BOUND, cost  # one HGETALL per row at least: it is measured
    assert all(did in html for did in newest[60_001 : 60_001 + PAGE])
    assert deep not in html
    for query in ("status=skipped", f"subscription={SCALE_SID}", "status=succeeded&subscription="):
        html, cost = await _page(harness.client, real_redis, f"/console/deliveries?{query}")
        assert PAGE <= cost <= BOUND, (query, cost)
        assert html.count('href="/console/deliveries/dlv_') == PAGE, query
